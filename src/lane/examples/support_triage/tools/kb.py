"""The knowledge base: Markdown articles in kb/, each with a category and keywords."""

import re
from pathlib import Path

from ruamel.yaml import YAML

from lane import tool

KB = Path(__file__).resolve().parent.parent / "kb"


FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.S)


def _articles() -> list[dict[str, object]]:
    articles = []
    for file in sorted(KB.glob("*.md")):
        found = FRONT.match(file.read_text(encoding="utf-8").replace("\r\n", "\n"))
        meta = YAML(typ="safe").load(found.group(1)) if found else None
        if not isinstance(meta, dict) or "title" not in meta:
            raise ValueError(f"kb/{file.name} needs front matter between --- lines with a title, a category and keywords")
        articles.append({**meta, "slug": file.stem, "path": f"kb/{file.name}", "text": found.group(2).strip() if found else ""})
    return articles


@tool(effect="read", idempotent=True)
def find_article(category: str, subject: str, body: str) -> dict[str, object]:
    """Find the article that best answers an email: most keywords in common, its category first.

    Args:
        category: The email's category, from triage.
        subject: The email's subject.
        body: The email's text.
    """
    words = set(re.findall(r"[a-z]+", f"{subject} {body}".lower()))
    best, best_score = None, 0.0
    for article in _articles():
        keywords = {str(k) for k in article.get("keywords", [])}  # type: ignore[attr-defined]
        score = len(words & keywords) + (1.5 if article.get("category") == category else 0)
        if score > best_score:
            best, best_score = article, score
    if best is None or best_score < 2:
        return {"found": False}
    first = str(best["text"]).split("\n\n")[0]
    return {"found": True, "slug": best["slug"], "title": best["title"], "path": best["path"], "excerpt": first}
