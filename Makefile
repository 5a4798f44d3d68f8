# lsaa — see README.md. Every target runs from a checkout after `make setup`.
PYTHON ?= .venv/bin/python
SYSPY  := /usr/bin/python3
PYTEST := $(PYTHON) -m pytest
OCF_DIR := /usr/lib/ocf/resource.d/lsaa
SITE   := $(shell $(SYSPY) -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
AGENTS := $(notdir $(wildcard ocf/*))
FENCE  := $(notdir $(wildcard fence/fence_*))

.PHONY: all setup dev-install lint py39 unit functional lab-test check test bench \
        metadata metadata-check man rpm demo clean

all: check

setup:
	bash scripts/setup-debian.sh

# Make the checkout what the RPM would install: the package importable by the
# system Python (a .pth file), the launchers where Pacemaker and the fencer look.
dev-install:
	mkdir -p $(SITE) $(OCF_DIR)
	echo "$(CURDIR)/lib" > $(SITE)/lsaa-dev.pth
	for a in $(AGENTS); do ln -sfn $(CURDIR)/ocf/$$a $(OCF_DIR)/$$a; done
	for f in $(FENCE); do ln -sfn $(CURDIR)/fence/$$f /usr/sbin/$$f; done

lint:
	$(PYTHON) -m ruff check lib tests bench
	$(PYTHON) -m mypy

# Python 3.9 is RHEL 9's system Python: vermin proves no newer syntax or API is used.
py39:
	$(PYTHON) -m vermin --target=3.9- --violations --no-tips --eval-annotations --backport dataclasses -q lib ocf fence

unit:
	$(PYTEST) -q tests/unit

functional:
	$(PYTEST) -q tests/functional

lab-test:
	$(PYTEST) -q tests/lab

metadata:
	$(PYTHON) -m lsaa.tools.metadata write metadata

metadata-check:
	$(PYTHON) -m lsaa.tools.metadata check metadata

check: lint py39 metadata-check unit functional

test: check lab-test

bench:
	$(PYTHON) bench/run.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
