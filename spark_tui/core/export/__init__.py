"""Deploy step: merge adapters, export GGUF, quantize, verify, and register with Ollama.

Modules (each importable on its own; heavy libraries load lazily):

* ``pipeline``       - the round trip as the CLI and the Deploy screen drive it
* ``preflight``      - the memory and disk each stage needs, checked before it starts
* ``merge``          - adapters merged into the base weights (streaming, PEFT as fallback)
* ``stream_merge``   - the streaming LoRA / rsLoRA / DoRA merge, one tensor at a time
* ``tensor_source``  - a checkpoint's tensors read one at a time, whatever its size
* ``gguf_writer``    - our own HF -> GGUF writer on the ``gguf`` library (f16/bf16/q8_0)
* ``gguf_archs``     - what differs between the architectures the writer handles
* ``gguf_vocab``     - tokenizer -> GGUF vocabulary
* ``gguf_meta``      - the ``general.*`` metadata of an exported file
* ``quantize``       - K-quants through llama.cpp's own quantizer
* ``verify``         - an exported GGUF checked against the model it came from
* ``verify_tensors`` - every tensor read back and compared
* ``verify_report``  - the verification report, one check per line
* ``modelfile``      - Ollama Modelfile with a Go TEMPLATE equivalent to the jinja one
* ``ollama``         - registration through the ollama CLI or REST API, test prompt
* ``common``         - errors, progress callbacks, atomic outputs, the test question
"""
