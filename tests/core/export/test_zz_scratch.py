import time
from spark_tui.core.export.pipeline import export_model


def test_scratch(llama3_dir, spm_dir, qwen2_dir, default_model_dir, tmp_path):
    for d in (llama3_dir, spm_dir, qwen2_dir, default_model_dir):
        t = time.time()
        types = ["f16", "q8_0", "q4_k_m"] if d != spm_dir else ["f16"]
        out = export_model(d, tmp_path / d.parent.name, types)
        print(d, time.time() - t, out.notes)
        for k, v in out.verifications.items():
            print("\n".join(v.summary_lines()))
