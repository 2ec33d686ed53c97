"""The ``tinymtl`` command line (click). Subcommands arrive with the layers they drive."""

import click

from tinymtl import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinymtl")
def main():
    """tinymtl: multi-task learning you can read."""


if __name__ == "__main__":
    main()
