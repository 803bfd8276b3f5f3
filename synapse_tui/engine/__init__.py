"""The upload engine: stdlib, httpx and xxhash only; never Textual."""
