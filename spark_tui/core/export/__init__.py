"""Deploy: merge adapters, export GGUF, quantize, verify, and register with Ollama.

Modules (each importable on its own; heavy libraries load lazily):

* ``merge``       - PEFT merge_and_unload into a standard HF folder, logits-checked
* ``gguf_writer`` - our own HF -> GGUF writer for the Llama family (f16/bf16/q8_0)
* ``quantize``    - K-quants through llama.cpp's quantizer (or a llama.cpp checkout)
* ``verify``      - llama.cpp + transformers checks of an exported file
* ``modelfile``   - Ollama Modelfile with a Go TEMPLATE equivalent to the jinja one
* ``ollama``      - registration through the ollama CLI or REST API, test prompt
* ``preflight``   - free-disk check before any of it starts
* ``pipeline``    - the round trip as the CLI and the Deploy screen drive it
"""
