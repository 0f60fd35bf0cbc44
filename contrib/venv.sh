# Shared by ./build and ./test: a project venv in .venv, reinstalled when pyproject.toml changes.
setup_venv() {
	python=${PYTHON:-python3}
	if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
		echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
		exit 1
	fi
	if [ ! -x .venv/bin/python ]; then
		"$python" -m venv .venv
	fi
	stamp=".venv/.installed-$(cksum pyproject.toml | cut -d' ' -f1)-$1"
	if [ ! -e "$stamp" ]; then
		.venv/bin/python -m pip install --quiet --upgrade pip
		.venv/bin/python -m pip install --quiet -e "$1"
		rm -f .venv/.installed-*
		touch "$stamp"
	fi
}
