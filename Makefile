# The two commands a newcomer needs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install postgres prometheus browser demo test lint dev bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first (from this machine's disk), so nothing pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,mlflow,onnx]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/wxplat demo

# PostgreSQL from Debian's packages, for the instance-storage tests (they start it themselves).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else echo "PostgreSQL is not installed (needs root): its tests skip outside CI"; fi

# Prometheus (and promtool) from Debian's packages, for the monitoring tests (they start their
# own server on 127.0.0.1; the package's own service is stopped and disabled where systemd
# runs). Without it (not root) they skip.
prometheus:
	@{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      --no-install-recommends prometheus && \
	    { systemctl disable --now prometheus >/dev/null 2>&1 || true; }; \
	  else echo "Prometheus is not installed (needs root): its tests skip outside CI"; fi

# Headless Chromium from Debian's packages (no recommends: no desktop services), for the
# browser tests of the UI and scripts/screenshots.py; without it (not root) those tests skip.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      --no-install-recommends chromium chromium-driver fonts-liberation; \
	  else echo "Chromium is not installed (needs root): the browser tests skip"; fi

test: install postgres prometheus browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

dev: install
	DAGSTER_HOME=$(CURDIR)/.wxplat/dagster $(VENV)/bin/wxplat instance
	DAGSTER_HOME=$(CURDIR)/.wxplat/dagster $(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf .wxplat
