# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install everything; a second call installs nothing.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.ykd-installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test lint bench bench-scenarios install clean-venv

install: $(STAMP)

$(STAMP): setup.py tools/install_detectron2.py Makefile
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1 "setuptools<81" numpy \
		opencv-python-headless pycocotools "fvcore>=0.1.5,<0.1.6" "iopath>=0.1.7,<0.1.10"
	$(VPY) tools/install_detectron2.py
	$(VPY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VPY) tools/demo.py $(DEMO_ARGS)

test: $(STAMP)
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VPY) -m ruff check ykd tools tests bench
	$(VPY) -m ruff format --check ykd tools tests bench

bench: $(STAMP)
	$(VPY) bench/model_speed.py
	$(VPY) bench/kd_losses.py
	$(VPY) bench/step_time.py --model slim

# All methods on the synthetic 15-5, 19-1, 15-1 and 10-10 scenarios, 3 seeds of ft, mma_plus, ykd and
# dynamic_ykd (hours on 2 CPU cores, docs/benchmark.md; a rerun skips finished steps), then the
# paper's claims: bench/results/synthetic_*.
bench-scenarios: $(STAMP)
	$(VPY) bench/scenarios.py --scenarios 15-5 19-1 15-1 10-10 --seeds 3 --jobs 2
	$(VPY) bench/claims.py

clean-venv:
	rm -rf $(VENV)
