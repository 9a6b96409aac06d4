# gptbook: `make book` builds the book, `make test` runs every test. See README.md.
PYTHON  ?= python3
VENV    ?= .venv
TORCH   ?= torch
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NBS     := $(sort $(wildcard book/*.ipynb))
# nb-clean keeps outputs, execution counts, notebook metadata (the kernel) and the cell
# metadata that the book (tags) and nbgrader need; it drops everything else.
NBCLEAN := -o -c -n --preserve-cell-metadata-field tags --preserve-cell-metadata-field nbgrader
JB      := $(BIN)/jupyter-book build . --builder html -W -n --keep-going
# Tests never wait on the Hugging Face hub.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: setup data book test lint unit notebooks full-path book-strict rendered execute student clean

setup: $(STAMP)

# PyTorch first, and only if the environment has none, so $(TORCH) picks the build.
$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

data: setup
	$(BIN)/python -m gptbook.data fetch

book: data
	$(JB)
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

test: data lint unit notebooks full-path book-strict rendered

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: setup
	$(BIN)/pytest tests -m "not browser and not full_path"

# Every notebook, cells compared where they are tagged nbval-check-output; one notebook per worker.
# One thread per kernel: two kernels with two threads each on two cores run 5-7x slower.
notebooks: data
	OMP_NUM_THREADS=1 $(BIN)/pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg \
		-n 2 --dist loadfile -p no:cacheprovider book/ ; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

# Every notebook at GPTBOOK_SCALE=full as a fast dev run (a few steps a loop) on the CPU:
# the path most readers take, which the quick runs above never go down. One chapter a worker.
full-path: data
	OMP_NUM_THREADS=1 $(BIN)/pytest tests/test_full_path.py -m full_path -n 2 --dist load \
		-p no:cacheprovider

book-strict: data
	rm -rf _build/html _build/.doctrees
	$(JB)

rendered: setup
	$(BIN)/pytest tests -m browser

# Re-run every notebook top to bottom in place at this machine's scale, then clean it.
execute: data
	for nb in $(NBS); do $(BIN)/jupyter-execute --inplace --timeout=3600 $$nb || exit 1; done
	$(BIN)/nb-clean clean $(NBCLEAN) $(NBS)

# Student versions: solutions replaced by a stub, into _build/student/.
student: setup
	$(BIN)/python -m gptbook.student book _build/student

clean:
	rm -rf _build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
