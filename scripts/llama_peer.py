"""Loads llama-cpp-python for the comparison scripts.

A llama.cpp built with -march=native may use AMX tiles on CPUs that report AMX inside VMs
that do not enable it (SIGILL in ggml_backend_amx_mul_mat). With INKLING_LLAMA_NO_EXTRA_BUFTS=1
the extra buffer types (AMX, and the weight repacking that shares the mechanism) are turned
off; results are unchanged, and speed is unchanged for formats without a repacked layout
(Q4_1, Q5_0, Q6_K) but lower for Q4_0/Q4_K/Q8_0, which benchmarks must then say.
"""
import os

import llama_cpp

if os.environ.get("INKLING_LLAMA_NO_EXTRA_BUFTS") == "1":
    _defaults = llama_cpp.llama_cpp.llama_model_default_params

    def _params():
        p = _defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_cpp.llama_model_default_params = _params

Llama = llama_cpp.Llama
