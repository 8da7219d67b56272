"""Files into and out of containers: ``run(..., files=..., collect=...)`` moves a file made on
one platform to another (no volumes), byte for byte; the ``container`` fixture has the same
helpers (``put_files``, ``get_files``)."""

from __future__ import annotations

from acceptance import BUSYBOX_IMAGE, Project, assert_outcome

ROUND_TRIP = """
    import hashlib
    import pytest
    from pytest_multiarch.runtime.transfer import FileNotCollected

    pytestmark = pytest.mark.image("box")
    EVERY_BYTE = bytes(range(256)) * 4

    def test_made_on_one_platform_read_on_another(images):
        made = images["arm64"].run(
            ["sh", "-c", "mkdir -p /out && uname -m > /out/made && cat /in/seed >> /out/made"],
            files={"/in/seed": EVERY_BYTE},
            collect=["/out/made"],
        )
        assert made.exit_code == 0, made.stderr
        data = made.file("/out/made")
        assert data == b"aarch64\\n" + EVERY_BYTE
        read = images["amd64"].run(
            ["sh", "-c", "uname -m; md5sum < /in/from-arm64"], files={"/in/from-arm64": data}
        )
        machine, digest = read.stdout.split()[:2]
        assert (machine, digest) == ("x86_64", hashlib.md5(data).hexdigest())  # noqa: S324

    def test_host_file_keeps_its_mode_and_directories_stay(run, tmp_path):
        script = tmp_path / "hello.sh"
        script.write_text("#!/bin/sh\\necho hello from $(uname -m)\\n")
        script.chmod(0o750)
        before = run(["sh", "-c", "stat -c %a /tmp || echo none"]).stdout
        shell = "/opt/tools/hello.sh; stat -c %a /opt/tools/hello.sh; stat -c %a /tmp || echo none"
        result = run(
            ["sh", "-c", shell], files={"/opt/tools/hello.sh": script, "/tmp/marker": b"x"}
        )
        hello, mode, tmp_mode = result.stdout.split("\\n")[:3]
        assert hello.startswith("hello from ")
        assert mode == "750"
        assert tmp_mode + "\\n" == before  # an existing directory is not touched

    def test_missing_and_bad_paths(run):
        result = run(["sh", "-c", "exit 4"], collect=["/out/never"])
        assert result.files == {}
        with pytest.raises(FileNotCollected, match=r"/out/never was not collected.*exit 4"):
            result.file("/out/never")
        with pytest.raises(TypeError, match="a str is ambiguous"):
            run(["true"], files={"/in/x": "text"})
        with pytest.raises(Exception, match="not an absolute file path"):
            run(["true"], collect=["relative/path"])
        with pytest.raises(FileNotCollected, match="is a directory"):
            run(["true"], collect=["/etc"])

    def test_container_helpers(container, platform):
        container.put_files({"/srv/in.txt": b"payload"})
        shell = "mkdir -p /srv/out && tr a-z A-Z < /srv/in.txt > /srv/out/up.txt"
        code, output = container.exec(["sh", "-c", shell])
        assert code == 0, output
        found = container.get_files(["/srv/out/up.txt", "/srv/nothing"])
        assert found == {"/srv/out/up.txt": b"PAYLOAD"}
        assert container.get_file("/srv/out/up.txt") == b"PAYLOAD"
"""


def test_files_in_and_out_across_platforms(project: Project) -> None:
    project.image("box", BUSYBOX_IMAGE)
    project.tests(ROUND_TRIP)
    result = project.run("--platforms", "amd64,arm64", "-n", "2", "-v")
    result.assert_outcomes(passed=7)
    assert_outcome(result, "test_made_on_one_platform_read_on_another", "PASSED")
    assert_outcome(result, "test_container_helpers[arm64]", "PASSED")
