"""MkDocs hook: the generated pages (command line, configuration, results overview) and the
figures from committed files, made before every build."""

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FIGURES = (
    "workflow/report/readme/*.png",
    "benchmarks/measured/noise_cpu/*.png",
    "benchmarks/measured/noise_valleys/*.png",
    "benchmarks/measured/fidelity_cpu/*.png",
    "benchmarks/measured/reproduction_study/*.png",
    "benchmarks/measured/transformer_cpu/*.png",
)


def on_pre_build(config):
    sys.path.insert(0, str(DOCS))
    import gen_reference
    import gen_results

    gen_reference.write_all()
    gen_results.write_all()
    images = DOCS / "img"
    images.mkdir(exist_ok=True)
    for pattern in FIGURES:
        for figure in ROOT.glob(pattern):
            shutil.copy2(figure, images / figure.name)
