# The two commands of the README:
#   make demo   installs everything, then runs `radlabel demo`
#   make test   installs everything, then runs the whole test suite, and the integration tests
#               once more on the scale profile (PostgreSQL, Redis, two RQ workers)
# Both run as root on a fresh Debian 12 machine (apt, pip and npm registries only).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := orthanc orthanc-dicomweb orthanc-gdcm orthanc-python dcmtk tesseract-ocr tesseract-ocr-eng chromium fonts-dejavu-core redis-server \
                postgresql orthanc-postgresql

.PHONY: install system-packages python-env tools demo test bench clean

install: system-packages python-env tools

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

python-env: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'

tools: python-env
	$(BIN)/radlabel install
	cd ohif_extension && npm ci --no-audit --no-fund --loglevel=error

demo: install
	$(BIN)/radlabel demo

# pytest exits 5 when it collected no test: that is a broken suite, not a pass.
test: install
	@$(BIN)/python -m pytest -q -ra; rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests"; exit 1; fi; \
	if [ $$rc != 0 ]; then exit $$rc; fi; \
	echo "make test: the integration tests again, on the scale profile"; \
	RADLABEL_PROFILE=scale RADLABEL_WORKERS=2 $(BIN)/python -m pytest -q -ra tests/integration; rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no integration tests"; exit 1; fi; exit $$rc

bench: install
	$(BIN)/python bench/stow.py
	$(BIN)/python bench/brush_rle.py
	$(BIN)/python bench/deid.py
	$(BIN)/python bench/deid_peers.py
	$(BIN)/python bench/deid_ocr.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/worklist.py
	$(BIN)/pip install --quiet torch==2.13.0 monai==1.6.1  # the alternative measured against
	$(BIN)/python bench/agreement.py
	$(BIN)/python bench/seg.py
	$(BIN)/python bench/ml.py
	$(BIN)/python bench/qa.py
	$(BIN)/python bench/load.py --studies 1000 --adjudicate 100  # ~30 min on 2 cores

clean:
	-$(BIN)/radlabel down
	rm -rf .radlabel
