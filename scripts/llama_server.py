"""Runs llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) as inkling's remote peer.

Same arguments as `python -m llama_cpp.server`; with INKLING_LLAMA_NO_EXTRA_BUFTS=1 the AMX
buffer types that crash on some VMs are turned off first (see llama_peer.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_peer  # noqa: E402,F401  (patches model defaults before the server loads one)
from llama_cpp.server.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main()
