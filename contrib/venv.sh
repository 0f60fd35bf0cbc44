# Shared by ./build-iso and ./test: a project venv in .venv, reinstalled when pyproject.toml changes.
# One stamp per pyproject.toml and extra: `.` is satisfied by any install of the same pyproject.toml
# (`.[test]` includes it), so alternating ./test and ./build-iso installs nothing twice.
setup_venv() {
	python=${PYTHON:-python3}
	if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
		echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
		exit 1
	fi
	if [ ! -x .venv/bin/python ]; then
		"$python" -m venv .venv
	fi
	sum=$(cksum pyproject.toml | cut -d' ' -f1)
	stamp=".venv/.installed-$sum-$1"
	if [ -e "$stamp" ]; then
		return 0
	fi
	if [ "$1" = . ] && ls .venv/.installed-"$sum"-* >/dev/null 2>&1; then
		return 0
	fi
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install --quiet -e "$1"
	for old in .venv/.installed-*; do
		case "$old" in
		.venv/.installed-"$sum"-*) ;;
		*) rm -f "$old" ;;
		esac
	done
	touch "$stamp"
}
