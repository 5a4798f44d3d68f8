# lsaa — see README.md. Every target runs from a checkout after `make setup`.
PYTHON ?= .venv/bin/python
SYSPY  := /usr/bin/python3
PYTEST := $(PYTHON) -m pytest
OCF_DIR := /usr/lib/ocf/resource.d/lsaa
SITE   := $(shell $(SYSPY) -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
AGENTS := $(notdir $(wildcard ocf/*))
FENCE  := $(notdir $(wildcard fence/fence_*))

.PHONY: all setup dev-install lint py39 unit functional lab-test check test bench \
        metadata metadata-check man rpm demo demo-ns soak clean

all: check

setup:
	bash scripts/setup-debian.sh

# Make the checkout what the RPM would install: the package importable by the
# system Python (a symlink in its site directory: the launchers run python3 -IS, which
# reads no .pth file), the launchers where Pacemaker and the fencer look.
dev-install:
	mkdir -p $(SITE) $(OCF_DIR)
	rm -f $(SITE)/lsaa-dev.pth
	ln -sfn $(CURDIR)/lib/lsaa $(SITE)/lsaa
	for a in $(AGENTS); do ln -sfn $(CURDIR)/ocf/$$a $(OCF_DIR)/$$a; done
	for f in $(FENCE); do ln -sfn $(CURDIR)/fence/$$f /usr/sbin/$$f; done

lint:
	$(PYTHON) -m ruff check lib tests bench
	$(PYTHON) -m mypy

# Python 3.9 is RHEL 9's system Python: vermin proves no newer syntax or API is used.
py39:
	.venv/bin/vermin --target=3.9- --violations --no-tips --eval-annotations --backport dataclasses -q lib ocf fence

unit:
	$(PYTEST) -q tests/unit

functional:
	$(PYTEST) -q tests/functional

# The lab itself: guests, teardown guarantees, and the kernel features the
# agents need.  The agents' own lab tests run with `make test`.
lab-test:
	$(PYTEST) -q tests/lab/test_lab_*.py tests/lab/test_smoke_*.py

metadata:
	$(PYTHON) -m lsaa.tools.metadata write metadata

metadata-check:
	$(PYTHON) -m lsaa.tools.metadata check metadata

check: lint py39 metadata-check unit functional

# Everything CI runs: the static checks, then every test suite in one pytest
# session (one closing "N passed" line).
test: lint py39 metadata-check
	$(PYTEST) -q tests

bench:
	$(PYTHON) bench/run.py

# Man pages from the agents' declarations (the RPM build runs the same generator).
man:
	PYTHONPATH=lib $(PYTHON) -m lsaa.tools.man build/man

# Noarch RPMs for RHEL 9 in build/rpm/RPMS/noarch, then rpmlint.  The tarball is
# what `git ls-files` sees (tracked and new files, as they are in the work tree),
# so a dirty tree builds.  --dbpath keeps rpm off ~/.rpmdb; --nodeps because on a
# Debian host the BuildRequires are Debian packages, not in an rpm database;
# macros.el-compat supplies RHEL 9's Python macros.
RPM_VERSION = $(shell PYTHONPATH=lib $(SYSPY) -c 'import lsaa; print(lsaa.__version__)')
RPM_TOP := $(CURDIR)/build/rpm
RPMBUILD := rpmbuild --load $(CURDIR)/rpm/macros.el-compat --define "_topdir $(RPM_TOP)" \
            --dbpath $(RPM_TOP)/db --nodeps
rpm:
	rm -rf $(RPM_TOP)
	mkdir -p $(RPM_TOP)/SOURCES $(RPM_TOP)/db
	git ls-files -z --cached --others --exclude-standard \
	  | $(SYSPY) -c 'import os, sys; sys.stdout.write("".join(f + "\0" for f in sys.stdin.read().split("\0") if os.path.isfile(f)))' \
	  | tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
	        --mtime='2000-01-01 00:00Z' --transform 's,^,lsaa-$(RPM_VERSION)/,' \
	        -czf $(RPM_TOP)/SOURCES/lsaa-$(RPM_VERSION).tar.gz
	$(RPMBUILD) -ba rpm/lsaa.spec
	rpmlint -c rpm/lsaa-rpmlint.toml -r rpm/lsaa.rpmlintrc $(RPM_TOP)/RPMS/noarch/*.rpm $(RPM_TOP)/SRPMS/*.src.rpm rpm/lsaa.spec

# The README's first command: the seed's cluster automated — two lab guests
# running Corosync+Pacemaker with IPMI fencing and the lsaa storage and LVS
# stack; kills the active node and prints the failover timeline (~1.5 min).
# KEEP=1 keeps it running (Ctrl-C tears it down).
demo:
	$(PYTHON) -m tests.stack demo $(if $(KEEP),--keep)

# Two Pacemaker nodes in namespaces on the host with the reference agents (~15 s).
# KEEP=1 leaves it running; `python3 demo/demo.py --teardown` stops it.
demo-ns:
	$(SYSPY) demo/demo.py $(if $(KEEP),--keep)

# Ten failovers of the lab stack back and forth, MTTR per run (~7 min).
soak:
	$(PYTHON) -m tests.stack soak -n 10

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
