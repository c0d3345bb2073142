#!/usr/bin/env python3
"""Redis MEMORY USAGE of one 10-ingredient session: f2f's hash against the plan's JSON string.

Both keys are written side by side in the same Redis, with a TTL each (the plan
used SETEX too), measured with ``MEMORY USAGE key SAMPLES 0`` and deleted again.

    .venv/bin/python scripts/bench_redis_memory.py [--url redis://127.0.0.1:6379/0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from datetime import datetime

from f2f_cli.settings import Settings
from f2f_cli.stores.redis import RedisSessionStore

INGREDIENTS = ["계란", "대파", "두부", "김치", "양파", "마늘", "돼지고기", "감자", "애호박", "고추장"]


async def measure(url: str) -> dict[str, object]:
    prefix = f"f2fmem{secrets.token_hex(3)}"
    settings = Settings.from_env({"F2F_REDIS_URL": url, "F2F_REDIS_KEY_PREFIX": prefix}, env_file=None)
    store = RedisSessionStore.from_settings(settings)
    client = store.client
    session = await store.create()
    for name in INGREDIENTS:  # one add per request, as the app does
        await store.add_ingredients(session.session_id, [name])
    hash_key = store.keys.session(session.session_id)
    created = datetime.now().isoformat()
    plan_default = json.dumps({"created_at": created, "ingredients": INGREDIENTS})  # the plan's json.dumps()
    plan_compact = json.dumps({"created_at": created, "ingredients": INGREDIENTS}, ensure_ascii=False,
                              separators=(",", ":"))  # fmt: skip
    json_keys = {
        "plan_json_default": (f"{prefix}:session:{session.session_id}", plan_default),
        "plan_json_compact_utf8": (f"{prefix}:session2:{session.session_id}", plan_compact),
    }
    try:
        for key, value in json_keys.values():
            await client.set(key, value, ex=settings.session_ttl_seconds)
        result: dict[str, object] = {
            "redis_version": (await client.info("server"))["redis_version"],
            "ingredients": len(INGREDIENTS),
            "f2f_hash_bytes": await client.memory_usage(hash_key, samples=0),
            "f2f_hash_encoding": (await client.object("encoding", hash_key)).decode(),
            "f2f_hash_fields": await client.hlen(hash_key),
        }
        for label, (key, value) in json_keys.items():
            result[f"{label}_bytes"] = await client.memory_usage(key, samples=0)
            result[f"{label}_value_length"] = len(value.encode())
        return result
    finally:
        await client.delete(hash_key, *(k for k, _ in json_keys.values()))
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = asyncio.run(measure(args.url))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")
    smallest_plan = min(int(result["plan_json_default_bytes"]), int(result["plan_json_compact_utf8_bytes"]))  # type: ignore[call-overload]
    return 0 if int(result["f2f_hash_bytes"]) <= smallest_plan else 1  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main())
