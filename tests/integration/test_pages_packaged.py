"""The recorder page the API serves at / must travel in the Lambda zip: it is read from
chalicelib/web/, which `chalice package` copies whole."""
import zipfile

from tests.deployment import ROOT


def test_the_lambda_zip_holds_the_recorder_page(package_dir):
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        packaged = archive.read("chalicelib/web/recorder.html")
    assert packaged == (ROOT / "chalicelib" / "web" / "recorder.html").read_bytes()
