"""Dish category and cooking method from a title, when the source does not give them.

The values follow COOKRCP01's own vocabulary (RCP_PAT2 / RCP_WAY2), so imported
official rows and derived ones filter the same way.
"""

from __future__ import annotations

CATEGORIES = ("반찬", "국&찌개", "일품", "밥", "후식", "기타")
METHODS = ("끓이기", "볶기", "굽기", "찌기", "튀기기", "기타")

# First match wins, so more specific words come first.
_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("후식", ("케이크", "쿠키", "라떼", "주스", "스무디", "푸딩", "젤리", "머핀", "마들렌", "타르트", "아이스",
              "셔벗", "화채", "음료", "에이드", "양갱", "강정", "떡케이크", "파이", "빙수", "식혜", "수정과", "녹차",
              "펀치", "쉐이크", "와플", "팬케이크", "경단", "약과", "정과", "한과", "브라우니", "스콘")),
    ("밥", ("덮밥", "비빔밥", "볶음밥", "김밥", "주먹밥", "초밥", "스시", "리조또", "죽", "밥", "라이스", "영양밥",
            "솥밥", "오므라이스", "카레라이스")),
    ("국&찌개", ("찌개", "전골", "국", "탕", "스프", "수프", "국물", "개장", "곰탕", "냉국", "샤브샤브")),
    ("일품", ("파스타", "스파게티", "피자", "버거", "샌드위치", "면", "국수", "우동", "라면", "만두", "떡볶이",
              "스테이크", "그라탕", "또띠아", "부리또", "타코", "롤", "수제비", "칼국수", "냉면", "잡채", "쌈",
              "토스트", "핫도그", "카나페", "와플")),
    ("반찬", ("무침", "볶음", "조림", "구이", "전", "나물", "김치", "찜", "샐러드", "장아찌", "겉절이", "튀김",
              "부침", "말이", "장조림", "숙채", "생채", "냉채", "절임", "피클", "강회", "편육", "수육", "쌈장")),
)
_METHOD_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("튀기기", ("튀김", "까스", "가스", "강정", "튀긴", "프라이", "크로켓", "탕수")),
    ("찌기", ("찜", "수육", "만두", "떡", "푸딩", "계란찜", "달걀찜")),
    ("굽기", ("구이", "스테이크", "그라탕", "피자", "쿠키", "케이크", "머핀", "전", "부침", "빵", "토스트", "오븐",
              "파이", "와플", "팬케이크")),
    ("볶기", ("볶음", "볶은", "잡채", "떡볶이", "리조또", "파스타", "스파게티")),
    ("끓이기", ("국", "탕", "찌개", "전골", "죽", "스프", "수프", "조림", "라면", "국수", "우동", "칼국수", "수제비")),
)


def _first(title: str, table: tuple[tuple[str, tuple[str, ...]], ...], default: str) -> str:
    compact = "".join(title.split())
    for value, words in table:
        if any(word in compact for word in words):
            return value
    return default


def category_for(title: str) -> str:
    return _first(title, _CATEGORY_WORDS, "기타")


def method_for(title: str) -> str:
    return _first(title, _METHOD_WORDS, "기타")
