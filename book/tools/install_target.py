"""Where readers install segtutor from: derived from ``_config.yml``'s ``repository`` section.

``_config.yml`` names the repository once (``repository: url, branch``), and Jupyter Book's
Colab and repository buttons already use it. Everything else that points at the repository
is derived from it here, and ``tests/project/test_install_target.py`` checks each copy:

* the pip target of every chapter's setup cell (cell 1):
  ``segtutor @ git+https://github.com/OWNER/NAME@BRANCH``;
* a chapter's Colab address, as the theme's launch button builds it:
  ``{launch_buttons.colab_url}/github/OWNER/NAME/blob/BRANCH/book/FILE.ipynb``;
* the published site (GitHub Pages of the repository): ``https://OWNER.github.io/NAME``.

Print them (to paste into a notebook or the README)::

    python book/tools/install_target.py              # the pip target
    python book/tools/install_target.py --colab book/02_convolution_arithmetic.ipynb
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "_config.yml"
#: The distribution the setup cells install.
PACKAGE = "segtutor"
#: The form of ``repository.url`` (a GitHub repository, no trailing slash or ``.git``).
GITHUB_URL = re.compile(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)")


@dataclass(frozen=True)
class Repository:
    """The repository and branch the book is installed and launched from."""

    url: str
    branch: str
    colab: str

    @property
    def owner(self) -> str:
        """The GitHub account (``segtutor`` in ``https://github.com/segtutor/segtutor``)."""
        return self._parts()["owner"]

    @property
    def name(self) -> str:
        """The repository's name."""
        return self._parts()["name"]

    def _parts(self) -> dict[str, str]:
        found = GITHUB_URL.fullmatch(self.url)
        if found is None or found["name"].endswith(".git"):
            raise ValueError(f"repository.url must be https://github.com/OWNER/NAME, "
                             f"got {self.url!r}")
        return found.groupdict()

    @property
    def pip_target(self) -> str:
        """The requirement a chapter's setup cell installs on Colab."""
        return f"{PACKAGE} @ git+{self.url}@{self.branch}"

    @property
    def pages_url(self) -> str:
        """The GitHub Pages address of the repository (where the book is published)."""
        return f"https://{self.owner}.github.io/{self.name}"

    def colab_url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (a path from the repository root) on Colab."""
        if not isinstance(notebook, str):
            raise TypeError(f"notebook must be a str, got {notebook!r} ({type(notebook).__name__})")
        if not notebook.endswith(".ipynb") or notebook.startswith("/"):
            raise ValueError(f"notebook must be a .ipynb path relative to the repository root, "
                             f"got {notebook!r}")
        return f"{self.colab}/github/{self.owner}/{self.name}/blob/{self.branch}/{notebook}"


def repository(config: Path = CONFIG) -> Repository:
    """Read the repository, branch and Colab address from the book's ``_config.yml``.

    Raises:
        ValueError: the config lacks ``repository.url``/``branch`` or ``launch_buttons.colab_url``,
            or the url is not a GitHub repository's.
    """
    settings = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    section = settings.get("repository") or {}
    url, branch = section.get("url"), section.get("branch")
    colab = (settings.get("launch_buttons") or {}).get("colab_url")
    for key, value in (("repository.url", url), ("repository.branch", branch),
                       ("launch_buttons.colab_url", colab)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{config} must set {key} to a non-empty string, got {value!r}")
    found = Repository(url=url, branch=branch, colab=colab.rstrip("/"))
    found._parts()  # refuse a url that is not a GitHub repository's now, not on first use
    return found


def main(argv: list[str] | None = None) -> None:
    """Print the pip target, or with ``--colab NOTEBOOK`` that chapter's Colab address."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--colab", metavar="NOTEBOOK", help="e.g. book/02_convolution_arithmetic.ipynb")
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args(argv)
    found = repository(args.config)
    print(found.colab_url(args.colab) if args.colab else found.pip_target)


if __name__ == "__main__":
    main()
