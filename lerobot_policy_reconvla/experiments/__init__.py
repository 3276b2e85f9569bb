"""Experiments that anyone reruns with one command and that write their own report (see `evidence`)."""
