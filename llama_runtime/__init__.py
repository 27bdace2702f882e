"""The on-device llama.cpp runtime that the edge agent and the trainer share; it imports neither.

- `llm.py`: llama-cpp-python on a GGUF (the only `llama_cpp` import of the project): the agent's
  `LocalModel` and the trainer's batched `BatchSampler`, both with a swappable LoRA adapter;
- `export.py`: a peft LoRA -> a GGUF LoRA adapter for llama.cpp (numpy + gguf; no torch);
- `generation.py`: what a local generation returns.
"""
