"""`spark-tui merge`, `spark-tui export`, `spark-tui ollama`: the Deploy step from the shell.

    spark-tui merge RUN                       merge the run's adapter into RUN/merged/
    spark-tui export RUN --type q4_k_m        GGUF files in RUN/gguf/, each verified
    spark-tui export --model-dir DIR --type f16 --type q8_0
    spark-tui ollama RUN --name my-model      Modelfile + register + test prompt

RUN is a run folder, id, or unique part of an id.  `--model-dir` exports any
Hugging Face Llama-family folder without a trained run.  Before any work each
command prints its preflight table (RAM and disk per stage against what is free
now) on stderr and refuses when a required stage cannot fit; `--no-logits`
skips the one verification step that loads the whole model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spark_tui.commands.args import add_command, add_json, add_run
from spark_tui.core.base.errors import SparkError

TYPES = ("f16", "bf16", "q8_0", "q4_k_m", "q5_k_m", "q6_k")
_RUN_HELP = "run folder, id, or unique part of an id"


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "merge",
        cmd_merge,
        help="merge a run's LoRA/DoRA/QLoRA adapter into a full model (RUN/merged/)",
        description="Merge the trained adapter into the base weights (QLoRA: into the base "
        "reloaded in 16-bit) and check that the merged logits equal the adapter model's.",
    )
    add_run(p, _RUN_HELP, metavar=None)
    p.add_argument("--base", help="base model folder or Hub id (default: the run's model)")
    p.add_argument("--no-check", action="store_true", help="skip the logits check")
    add_json(p)

    p = add_command(
        subparsers,
        "export",
        cmd_export,
        help="export a run (or --model-dir) to GGUF and verify it against the HF model",
        description="Write GGUF files with spark-tui's own exporter (f16, bf16, q8_0) and "
        "llama.cpp's quantizer (q4_k_m, q5_k_m, q6_k), then verify each with llama.cpp and "
        "transformers.",
    )
    _source_args(p)
    p.add_argument(
        "--type",
        "-t",
        dest="types",
        action="append",
        choices=TYPES,
        help="GGUF type; repeat for several (default: q4_k_m)",
    )
    p.add_argument("--out", help="output folder (default: RUN/gguf or DIR-gguf)")
    p.add_argument("--no-verify", action="store_true", help="skip the verification")
    p.add_argument(
        "--no-logits",
        action="store_true",
        help="skip the logits check (the one verification step that loads the whole model); "
        "tokenization and every tensor are still checked",
    )
    p.add_argument(
        "--llama-cpp",
        metavar="DIR",
        help="use this llama.cpp checkout (convert_hf_to_gguf.py + llama-quantize) instead",
    )
    add_json(p)

    p = add_command(
        subparsers,
        "ollama",
        cmd_ollama,
        help="write a Modelfile and register the exported model with Ollama",
        description="Write a Modelfile (FROM the GGUF, TEMPLATE equivalent to the chat template, "
        "stop tokens, SYSTEM, num_ctx), register it with the ollama CLI or the REST API, and "
        "send a test prompt.  Exports the GGUF first if it is missing.",
    )
    _source_args(p)
    p.add_argument("--name", required=True, help="Ollama model name, e.g. my-model:latest")
    p.add_argument("--host", help="Ollama server URL (default: $OLLAMA_HOST or 127.0.0.1:11434)")
    p.add_argument(
        "--type",
        "-t",
        dest="qtype",
        default="q4_k_m",
        choices=TYPES,
        help="which GGUF to register (default: q4_k_m)",
    )
    p.add_argument(
        "--from-safetensors",
        action="store_true",
        help="import the merged safetensors folder (FROM ./merged) and let Ollama "
        "quantize it (Llama and Qwen2 only)",
    )
    p.add_argument(
        "--quantize",
        default="q4_K_M",
        help="with --from-safetensors: ollama create --quantize value (default q4_K_M)",
    )
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--num-ctx", type=int, help="context length for Ollama (default: up to 4096)")
    p.add_argument("--template", help="template family override (chatml, llama3, llama2, ...)")
    p.add_argument(
        "--prompt",
        default=None,
        help="test prompt (default: a one-word question the model answers and stops)",
    )
    p.add_argument("--api", action="store_true", help="use the REST API even if the CLI exists")
    p.add_argument("--out", help="output folder (default: RUN or DIR-gguf)")
    add_json(p)


def _source_args(p: argparse.ArgumentParser) -> None:
    add_run(p, _RUN_HELP, metavar=None, nargs="?")
    p.add_argument(
        "--model-dir", metavar="DIR", help="export this Hugging Face model folder instead of a run"
    )


class _Printer:
    """Progress on stderr: one updating line per stage on a terminal, sparse lines otherwise.

    With SPARK_TUI_PROGRESS=json every event is one JSON line on stderr
    (``{"stage": ..., "done": ..., "total": ...}``) for a parent process (the
    Deploy screen) to follow.
    """

    def __init__(self, enabled: bool = True):
        import os

        self.json = os.environ.get("SPARK_TUI_PROGRESS") == "json"
        self.enabled = enabled or self.json
        self.tty = sys.stderr.isatty()
        self._last: tuple[str, int] = ("", -1)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.json:
            print(
                json.dumps({"stage": stage, "done": done, "total": total}),
                file=sys.stderr,
                flush=True,
            )
            return
        pct = int(100 * done / total) if total else 0
        if self.tty:
            end = "\n" if total and done >= total else ""
            print(f"\r{stage:>10} {pct:3d}% ", end=end, file=sys.stderr, flush=True)
        elif (stage, pct // 25) != self._last and (pct % 25 == 0 or done >= total):
            self._last = (stage, pct // 25)
            print(f"{stage}: {pct}%", file=sys.stderr, flush=True)


def _resolve(args: argparse.Namespace):
    """(run or None, model dir to export or None, output folder, stem)."""
    if args.model_dir:
        d = Path(args.model_dir).expanduser().resolve()
        if not (d / "config.json").exists():
            raise SparkError(f"{d}: not a model folder (no config.json)")
        out = (
            Path(args.out).expanduser()
            if getattr(args, "out", None)
            else d.with_name(d.name + "-gguf")
        )
        return None, d, out, d.name
    if not args.run:
        raise SparkError("give a RUN (folder or id) or --model-dir DIR")
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    return run, None, None, run.id


def _print_plan(plan: Any) -> None:
    """The preflight table on stderr (the Deploy screen shows stderr lines in its log)."""
    if plan is not None:
        print("\n".join(plan.lines()), file=sys.stderr, flush=True)


def _merge(run: Any, progress: Any, *, check: bool = True, base: str | None = None):
    """(preflight, merge result): the table is printed before the merge starts."""
    from spark_tui.core.export.pipeline import merge_preflight, merge_run, save_summary

    plan = merge_preflight(run, check=check, base=base)
    _print_plan(plan)
    res = merge_run(run, check=check, base=base, progress=progress, plan=plan)
    if res is not None:  # the Deploy step's report, also when export merged first
        save_summary(run.path, {"merge": {**res.to_dict(), "ok": bool(res.passed)}})
    return plan, res


def cmd_merge(args: argparse.Namespace) -> int:
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    plan, res = _merge(run, _Printer(not args.json), check=not args.no_check, base=args.base)
    if res is None:
        msg = f"run {run.id} is a full fine-tune: {run.model_dir} is already a complete model"
        print(json.dumps({"merged": False, "message": msg}) if args.json else msg)
        return 0
    out = res.to_dict()
    if args.json:
        if plan is not None:
            out["preflight"] = plan.to_dict()
        print(json.dumps(out, indent=2))
    else:
        print("\n".join(res.summary_lines()))
    return 0 if res.passed else 1


def _ensure_model_dir(run: Any, progress: Any) -> Path:
    from spark_tui.core.export.pipeline import run_model_dir

    try:
        return run_model_dir(run)
    except SparkError:
        if not (Path(run.adapter_dir) / "adapter_config.json").exists():
            raise
    print(f"merging the adapter of {run.id} first ...", file=sys.stderr)
    _plan, res = _merge(run, progress)
    if res is not None:
        print("\n".join(res.summary_lines()), file=sys.stderr)
        if not res.passed:
            raise SparkError(
                "the merged model's logits differ from the adapter model's; not exporting"
            )
    return run_model_dir(run)


def _checks(rep: Any) -> dict[str, str]:
    """The three verification checks of one file, one word (or reason) each."""
    tok = "ok" if rep.tokenization_ok else "FAILED"
    if rep.tokenization_ok and not rep.tokenization_identical:
        tok = "ok (explained difference: warning)"
    if rep.tensors is not None:
        tensors = "ok" if rep.tensors.ok else "FAILED"
    else:
        tensors = rep.tensors_skipped or "not checked"
    if rep.llama_logits is not None:
        logits = "ok" if rep.logits_ok else "FAILED"
    else:
        logits = rep.logits_skipped or "not checked"
    return {"tokenization": tok, "tensors": tensors, "logits": logits}


def _provenance(run: Any) -> dict[str, str]:
    """general.finetune / general.base_model for the GGUF of a run (nothing for a folder)."""
    if run is None:
        return {}
    from spark_tui.core.model.resolve import DEFAULT_HUB_ID, DEFAULT_MODEL_ID

    model_id = run.config().model.id
    return {
        "finetune": run.id,
        "base_model": DEFAULT_HUB_ID if model_id in ("", DEFAULT_MODEL_ID) else model_id,
    }


def cmd_export(args: argparse.Namespace) -> int:
    from spark_tui.core.export.pipeline import (
        export_model,
        export_preflight,
        save_summary,
        write_modelfiles,
    )

    progress = _Printer(not args.json)
    run, model_dir, out, stem = _resolve(args)
    system = None
    if run is not None:
        model_dir = _ensure_model_dir(run, progress)
        out = Path(args.out).expanduser() if args.out else Path(run.path) / "gguf"
        system = run.config().data.system_prompt or None
    assert model_dir is not None and out is not None
    types = args.types or ["q4_k_m"]
    verify, logits = not args.no_verify, not args.no_logits
    plan = export_preflight(model_dir, out, types, verify=verify, logits=logits)
    _print_plan(plan)
    outcome = export_model(
        model_dir,
        out,
        types,
        stem=stem,
        verify=verify,
        logits=logits,
        llama_cpp_dir=args.llama_cpp,
        system=system,
        plan=plan,
        progress=progress,
        **_provenance(run),
    )
    summary = {
        "model_dir": str(model_dir),
        "outputs": {t: str(p) for t, p in outcome.outputs.items()},
        "verified": {t: v.passed for t, v in outcome.verifications.items()},
        "checks": {t: _checks(v) for t, v in outcome.verifications.items()},
        "notes": outcome.notes,
        "preflight": plan.to_dict(),
    }
    if outcome.outputs:
        # The Modelfile goes with the export (the run folder for a run): one `ollama create`
        # away from a served model, with the TEMPLATE and stops that match training.
        folder = Path(run.path) if run is not None and not args.out else out
        first = next(iter(outcome.outputs.values()))
        mf, mf_path, _st, _st_path = write_modelfiles(model_dir, folder, first, system=system)
        summary["modelfile"] = str(mf_path)
        summary["template"] = mf.family
    # The report the Deploy step shows again: each file's check lines, not its tensor lists.
    report = {t: {"summary": v.summary_lines()} for t, v in outcome.verifications.items()}
    record = {**summary, "verifications": report, "ok": bool(outcome.passed)}
    save_summary(run.path if run is not None else out, {"export": record})
    if args.json:
        summary["verifications"] = {t: v.to_dict() for t, v in outcome.verifications.items()}
        print(json.dumps(summary, indent=2))
    else:
        for t, p in outcome.outputs.items():
            size = p.stat().st_size / 1024**2
            print(f"{t:>7}: {p} ({size:.0f} MB)")
        for note in outcome.notes:
            print(f"note: {note}")
        for v in outcome.verifications.values():
            print()
            print("\n".join(v.summary_lines()))
        if "modelfile" in summary:
            cmd = " ".join(ollama_create_command(stem, summary["modelfile"]))
            print(f"\nModelfile: {summary['modelfile']} (template: {summary['template']})")
            print(f"serve it: {cmd}   (or `spark-tui ollama ... --name NAME`)")
    return 0 if outcome.passed else 1


def ollama_create_command(stem: str, modelfile: str) -> list[str]:
    from spark_tui.core.export import ollama

    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem.lower()) or "model"
    return ollama.create_command(name, modelfile)


def cmd_ollama(args: argparse.Namespace) -> int:
    from spark_tui.core.export import ollama
    from spark_tui.core.export.pipeline import (
        export_model,
        export_preflight,
        gguf_filename,
        save_summary,
        write_modelfiles,
    )

    ollama.check_name(args.name)
    progress = _Printer(not args.json)
    run, model_dir, out, stem = _resolve(args)
    system = args.system
    if run is not None:
        model_dir = _ensure_model_dir(run, progress)
        folder = Path(args.out).expanduser() if args.out else Path(run.path)
        gguf_dir = folder / "gguf"
        if system is None:
            system = run.config().data.system_prompt or None
    else:
        folder = gguf_dir = out
    assert model_dir is not None and folder is not None
    gguf_path = gguf_dir / gguf_filename(stem, args.qtype)
    if not args.from_safetensors and not gguf_path.exists():
        print(f"exporting {args.qtype} first ...", file=sys.stderr)
        plan = export_preflight(model_dir, gguf_dir, [args.qtype])
        _print_plan(plan)
        outcome = export_model(
            model_dir, gguf_dir, [args.qtype], stem=stem, system=system, plan=plan,
            progress=progress, **_provenance(run),
        )  # fmt: skip
        for v in outcome.verifications.values():
            print("\n".join(v.summary_lines()), file=sys.stderr)
    mf, mf_path, st, st_path = write_modelfiles(
        model_dir,
        folder,
        gguf_path,
        system=system,
        num_ctx=args.num_ctx,
        family=args.template,
        quantize=args.quantize,
    )
    if args.from_safetensors:
        if st is None:
            raise SparkError(
                "Ollama cannot import this architecture from safetensors (it converts Llama and "
                "Qwen2 itself, not Mistral); register the GGUF instead (drop --from-safetensors)"
            )
        mf, mf_path = st, st_path
    res = ollama.register(
        args.name,
        mf,
        mf_path,
        host=args.host,
        use_cli=False if args.api else None,
        test_prompt=args.prompt or ollama.TEST_PROMPT,
        progress=progress,
    )
    info = {
        "name": res.name,
        "host": res.host,
        "registered": res.registered,
        "method": res.method,
        "modelfile": str(mf_path),
        "answer": res.answer,
        "done_reason": res.done_reason,
        "warnings": res.warnings,
        "command": res.command,
        "message": res.message,
    }
    save_summary(folder, {"ollama": {**info, "ok": bool(res.registered)}})
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"Modelfile: {mf_path} (template: {mf.family})")
        if st_path is not None and not args.from_safetensors:
            print(
                f"also written: {st_path} (FROM the safetensors folder, --quantize {args.quantize})"
            )
        print("\n".join(res.summary_lines()))
    return 0 if res.registered else 3
