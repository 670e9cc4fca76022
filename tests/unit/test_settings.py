import pytest

from chalicelib.settings import ConfigurationError, get_settings


def test_the_local_stage_settings_are_read_once(settings_env):
    settings = settings_env()
    assert settings.bucket_name == "video-chunks-local"
    assert settings.max_chunk_bytes == 4_500_000
    assert settings.tokens_required
    assert get_settings() is settings


@pytest.mark.parametrize("name, value", [("BUCKET_NAME", ""), ("AUTH_MODE", "maybe"),
                                         ("MAX_CHUNK_BYTES", "lots"), ("MAX_CHUNK_BYTES", "0"),
                                         ("ALLOW_REENCODE", "perhaps"),
                                         ("MAX_REENCODE_SECONDS", "-1"),
                                         ("RENDITION_PIECE_SECONDS", "1"), ("JOB_WORKERS", "0")])
def test_bad_configuration_fails_loudly_with_the_variable_name(settings_env, name, value):
    with pytest.raises(ConfigurationError, match=name):
        settings_env(**{name: value})


def test_re_encoding_can_be_turned_off_per_stage(settings_env):
    assert settings_env().allow_reencode is True
    assert settings_env(ALLOW_REENCODE="false").allow_reencode is False


def test_re_encoding_is_unbounded_unless_the_stage_bounds_it(settings_env):
    assert settings_env().max_reencode_seconds == 0
    assert settings_env(MAX_REENCODE_SECONDS="600").max_reencode_seconds == 600


def test_rendition_pieces_and_local_workers_are_set_per_stage(settings_env):
    assert (settings_env().rendition_piece_seconds, settings_env().job_workers) == (30, 2)
    custom = settings_env(RENDITION_PIECE_SECONDS="15", JOB_WORKERS="4")
    assert (custom.rendition_piece_seconds, custom.job_workers) == (15, 4)


def test_an_s3_compatible_store_of_its_own_is_addressed_by_path(settings_env, monkeypatch):
    from botocore.config import Config

    from chalicelib import aws
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert settings_env().s3_endpoint_url is None
    assert aws._config().s3["addressing_style"] == "auto"
    settings_env(AWS_ENDPOINT_URL_S3="http://minio.internal:9000")
    config: Config = aws._config()
    assert config.s3["addressing_style"] == "path"
    assert settings_env(AWS_ENDPOINT_URL="http://127.0.0.1:5000").s3_endpoint_url == (
        "http://minio.internal:9000")  # the S3 one wins for S3
