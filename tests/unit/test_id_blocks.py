"""Video ids in blocks (see chalicelib/adapters/dynamodb.py), over the in-memory catalog and
the settings: the block size is a per-stage setting, 1 where ids must count up 1, 2, 3."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import wiring
from chalicelib.adapters.memory_catalog import MemoryCatalog
from chalicelib.settings import ConfigurationError
from devtools.server import stage_environment


def test_the_local_stage_counts_ids_up_one_by_one(settings_env):
    settings = settings_env()
    assert settings.id_block_size == 1
    services = wiring.build(settings, wiring.memory_backend(id_block_size=settings.id_block_size))
    assert [services.videos.create().view.video.video_id for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_aws_stages_reserve_ids_in_blocks(settings_env, stage):
    assert settings_env(ID_BLOCK_SIZE=stage_environment(stage)["ID_BLOCK_SIZE"]).id_block_size == 20


@pytest.mark.parametrize("value", ["0", "-3", "twenty", "1.5"])
def test_a_block_size_under_one_or_not_a_whole_number_is_refused(settings_env, value):
    with pytest.raises(ConfigurationError, match="ID_BLOCK_SIZE"):
        settings_env(ID_BLOCK_SIZE=value)


def test_a_catalog_refuses_a_block_of_no_ids():
    with pytest.raises(ValueError, match="id_block_size"):
        MemoryCatalog(0)


def test_threads_of_one_instance_share_its_blocks_without_sharing_an_id():
    catalog = MemoryCatalog(id_block_size=7)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: catalog.create("h", "p", 1.0).video_id, range(100)))
    assert sorted(ids) == list(range(1, 101))  # one instance: no gap but the block's unused end
    assert catalog.last_reserved_id == 105  # 15 blocks of 7
