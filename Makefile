# Set-up is automatic: the first `make demo` or `make test` bootstraps .venv.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# the CPU build on these machines' disk; override e.g. TORCH_SPEC="torch" for another build
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast parity bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH_SPEC)"
	$(VPY) -m pip install -q -e ".[test]"
	$(VPY) -m compileall -q src  # bytecode up front: environments that never write it start faster
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p demo_out
	cd demo_out && ../$(VPY) -m nanobrag_torch -cell 70 80 90 75 85 95 -misset 10 20 30 \
		-default_F 100 -lambda 1.0 -N 5 -distance 100 -detpixels 512 -pixel 0.1 -mosaic 0.3 -mosaic_dom 5 \
		-floatfile demo.bin -intfile demo.img -pgmfile demo.pgm -nonoise
	$(VPY) -m nanobrag_torch.preview demo_out/demo.bin demo_out/demo.png
	@echo "demo outputs: demo_out/demo.bin (float), demo_out/demo.img (SMV), demo_out/demo.png (preview)"

test: $(STAMP)
	$(VPY) -m pytest -q -ra

test-fast: $(STAMP)
	$(VPY) -m pytest -q -ra -m "not slow"

parity: $(STAMP)
	$(VPY) ../shared/golden/parity.py --files --cli "$(CURDIR)/$(VPY) -m nanobrag_torch" --suite ../shared/golden

bench: $(STAMP)
	$(VPY) benchmarks/run.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
