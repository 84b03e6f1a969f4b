"""The protein wing: structure files to C-alpha coordinates, the ANM Hessian and its inverted
spectrum, the RCSB entry list and downloads, per-entry analysis (no torch)."""
