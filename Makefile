# make run: the API on http://127.0.0.1:$(PORT) with an embedded S3/DynamoDB/SQS emulator.
# make test: the whole suite (unit, emulator-backed, end-to-end over HTTP, real ffmpeg).
# make test-unit: the unit tier alone (in-memory backend, no ffmpeg, no emulator): seconds.
PORT ?= 8000
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
FFMPEG := $(CURDIR)/layers/ffmpeg/bin/ffmpeg

.PHONY: run test test-unit system-packages bench bench-load ffmpeg clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(FFMPEG): layers/ffmpeg/build.sh
	PYTHON=$(PYTHON) bash layers/ffmpeg/build.sh

ffmpeg: $(FFMPEG)

run: $(BIN)/.installed $(FFMPEG)
	PORT=$(PORT) FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m devtools.server

# Chromium, chromedriver, curl: installed with apt-get when missing and run as root.
system-packages:
	bash devtools/system-packages.sh

test: system-packages $(BIN)/.installed $(FFMPEG)
	FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: $(BIN)/.installed $(FFMPEG)
	FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m bench $(BENCH_ARGS)

# 50 recorders on a bad network (late answers, resends, doubles): nothing lost or doubled.
bench-load: $(BIN)/.installed $(FFMPEG)
	FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m bench.load $(BENCH_ARGS)

clean:
	rm -rf $(VENV) layers/ffmpeg/bin .pytest_cache
