"""Video ids without a hot key: each DynamoCatalog (each process, each Lambda instance)
reserves a block of ids with one ADD on the counter item and hands them out from memory.
Here on DynamoDB (moto): many instances at once, and how often the counter is written."""
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3

from chalicelib import aws as aws_clients
from chalicelib import wiring
from chalicelib.adapters.dynamodb import COUNTER_ID, DynamoCatalog
from chalicelib.settings import get_settings


class CountingTables:
    """A getter of this thread's Table (as aws.videos_table is) whose clients count the
    UpdateItem calls that write the id counter, seen by botocore before they are sent."""

    def __init__(self):
        self._per_thread = threading.local()
        self._lock = threading.Lock()
        self.counter_writes = 0

    def _seen(self, params, **kwargs) -> None:
        if "last_id" in params.get("UpdateExpression", ""):
            with self._lock:
                self.counter_writes += 1

    def __call__(self):
        table = getattr(self._per_thread, "table", None)
        if table is None:
            resource = boto3.resource("dynamodb", config=aws_clients._config())
            table = resource.Table(get_settings().table_name)
            table.meta.client.meta.events.register(
                "before-parameter-build.dynamodb.UpdateItem", self._seen)
            self._per_thread.table = table
        return table


def counter_value() -> int:
    item = aws_clients.videos_table().get_item(Key={"video_id": COUNTER_ID}, ConsistentRead=True)["Item"]
    return int(item["last_id"])


def test_many_instances_at_once_never_hand_out_one_id_twice(emulator):
    """8 instances, each serving 4 threads (chalice local's threads, or 8 processes), 50
    creates each, against the moto server, which applies each request atomically."""
    block, per_instance = 7, 50
    tables = CountingTables()
    catalogs = [DynamoCatalog(tables, get_settings().expire_after_seconds, block)
                for _ in range(8)]

    def creates_of(catalog) -> list[int]:
        with ThreadPoolExecutor(4) as threads:
            return list(threads.map(lambda _: catalog.create("h", "p", 1.0).video_id,
                                    range(per_instance)))

    with ThreadPoolExecutor(len(catalogs)) as instances:
        ids_by_instance = list(instances.map(creates_of, catalogs))

    ids = [video_id for ids in ids_by_instance for video_id in ids]
    assert len(ids) == len(set(ids)) == 8 * per_instance
    assert min(ids) >= 1
    blocks_each = math.ceil(per_instance / block)  # 8 blocks of 7 for 50 ids
    assert tables.counter_writes == 8 * blocks_each  # one write per block, not per create
    assert counter_value() == 8 * blocks_each * block == max(c.last_reserved_id for c in catalogs)
    assert max(ids) <= counter_value()
    # The blocks are aligned on the counter: no two instances ever drew from one block.
    owners = [{(video_id - 1) // block for video_id in ids} for ids in ids_by_instance]
    assert all(len(blocks) == blocks_each for blocks in owners)
    assert len(set().union(*owners)) == 8 * blocks_each
    video_id = ids_by_instance[3][17]
    assert catalogs[0].get(video_id).token_hash == "h"  # each video written as before


def test_a_block_of_twenty_writes_the_counter_once_per_twenty_ids(aws):
    tables = CountingTables()
    a, b = (DynamoCatalog(tables, get_settings().expire_after_seconds, 20) for _ in range(2))
    first = [a.create("h", "p", 1.0).video_id for _ in range(3)]
    second = [b.create("h", "p", 1.0).video_id for _ in range(3)]
    assert (first, second) == ([1, 2, 3], [21, 22, 23])
    assert (tables.counter_writes, counter_value()) == (2, 40)
    rest_of_a = [a.create("h", "p", 1.0).video_id for _ in range(18)]
    assert rest_of_a == list(range(4, 21)) + [41]  # the 21st id of a: its next block
    assert (tables.counter_writes, counter_value()) == (3, 60)


def test_an_instance_that_goes_away_leaves_the_rest_of_its_block_unused(aws):
    catalog = DynamoCatalog(aws_clients.videos_table, get_settings().expire_after_seconds, 5)
    assert catalog.create("h", "p", 1.0).video_id == 1
    recycled = DynamoCatalog(aws_clients.videos_table, get_settings().expire_after_seconds, 5)
    assert recycled.create("h", "p", 1.0).video_id == 6  # 2-5: a gap, no video has them
    assert [recycled.get(video_id) for video_id in range(2, 6)] == [None] * 4


def test_the_stage_s_block_size_reaches_the_catalog(aws, settings_env):
    catalog = wiring.aws_backend(settings_env(ID_BLOCK_SIZE=20)).catalog
    assert [catalog.create("h", "p", 1.0).video_id for _ in range(3)] == [1, 2, 3]
    assert counter_value() == 20  # one reservation of 20, not three of 1
