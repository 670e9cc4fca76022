# make run: the API on http://127.0.0.1:$(PORT) with an embedded S3/DynamoDB/SQS emulator.
# make test: the whole suite (unit, emulator-backed, end-to-end over HTTP, real ffmpeg).
# make test-unit: the unit tier alone (in-memory backend, no ffmpeg, no emulator): seconds.
PORT ?= 8000
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
FFMPEG := $(CURDIR)/layers/ffmpeg/bin/ffmpeg

.PHONY: run test test-unit system-packages bench bench-load bench-ready bench-rendition ffmpeg package aws-cli deploy destroy clean

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

# The H.264/AAC rendition in pieces (1, 2, N workers) against one pass, and the Lambda model.
bench-rendition: $(BIN)/.installed $(FFMPEG)
	FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m bench.rendition $(BENCH_ARGS)

# Time to ready and bytes moved by the final join of 1-, 10- and 60-minute WebM and fragmented
# MP4 recordings, S3 behind a latency model (bench/s3_latency.py). BENCH_ARGS=--quick: 1 and 10 min.
bench-ready: $(BIN)/.installed $(FFMPEG)
	FFMPEG_BINARY=$(FFMPEG) $(BIN)/python -m bench.ready $(BENCH_ARGS)

# Deploying to AWS (README, "Deploy to AWS"). make package needs no account: it writes
# build/package/sam.json (chalice's template merged with .chalice/template.json), the code's
# deployment.zip and the layer's ffmpeg-layer.zip, and checks the template with cfn-lint.
STAGE ?= dev
STACK ?= video-management-api-$(STAGE)
PACKAGE_DIR := build/package

package: $(BIN)/.installed $(FFMPEG)
	rm -rf $(PACKAGE_DIR)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/chalice package --stage $(STAGE) \
		--merge-template .chalice/template.json $(PACKAGE_DIR)
	cd layers/ffmpeg && $(CURDIR)/$(BIN)/python -m zipfile -c $(CURDIR)/$(PACKAGE_DIR)/ffmpeg-layer.zip bin
	$(BIN)/cfn-lint $(PACKAGE_DIR)/sam.json

aws-cli:
	@command -v aws >/dev/null || { echo "this needs the AWS CLI: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" >&2; exit 1; }

# DEPLOY_BUCKET: an S3 bucket of yours, in the stack's region, for the code and the layer.
# PARAMETERS: the template's parameters, as Name=value pairs (README lists them).
deploy: aws-cli package
	@test -n "$(DEPLOY_BUCKET)" || { echo "set DEPLOY_BUCKET to an S3 bucket of yours for the code" >&2; exit 1; }
	aws cloudformation package --template-file $(PACKAGE_DIR)/sam.json --use-json \
		--s3-bucket $(DEPLOY_BUCKET) --s3-prefix $(STACK) --output-template-file $(PACKAGE_DIR)/packaged.json
	aws cloudformation deploy --template-file $(PACKAGE_DIR)/packaged.json --stack-name $(STACK) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		$(if $(PARAMETERS),--parameter-overrides $(PARAMETERS))
	@aws cloudformation describe-stacks --stack-name $(STACK) --output text \
		--query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue"

# Deletes the stack and every video in it, after you type the stack's name.
destroy: aws-cli
	@read -p "Delete $(STACK) and every video it holds? Type its name to confirm: " answer; \
		[ "$$answer" = "$(STACK)" ] || { echo "not deleted" >&2; exit 1; }
	bucket=$$(aws cloudformation describe-stacks --stack-name $(STACK) --output text \
		--query "Stacks[0].Outputs[?OutputKey=='BucketName'].OutputValue") && \
		aws s3 rm "s3://$$bucket" --recursive --quiet
	aws cloudformation delete-stack --stack-name $(STACK)
	aws cloudformation wait stack-delete-complete --stack-name $(STACK)

clean:
	rm -rf $(VENV) layers/ffmpeg/bin .pytest_cache build
