# The two commands a newcomer needs: `make up` and `make test`. Both install what they need first.
.PHONY: up test setup check

setup:
	@bash scripts/setup.sh

up: setup
	@.venv/bin/agora up

test: setup
	@bash scripts/test.sh
