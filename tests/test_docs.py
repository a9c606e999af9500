"""README.md and docs/*.md: every relative link and image resolves (anchors included), and every
`tools/...` or `configs/...` path named in their code exists. Reads text only: no torch needed."""
import re
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]

FENCE = re.compile(r'^```.*?^```', re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r'`[^`\n]+`')
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
HEADING = re.compile(r'^#{1,6}\s+(.+?)\s*#*\s*$', re.MULTILINE)
# A repository path at the start of a word: not `$COAT_ROOT/tools/x` nor `mmdet/configs/x`.
REPO_PATH = re.compile(r'(?<![\w./$-])((?:tools|configs)/[^\s`\'"(),;:\]]*)')
# Words in capitals (CONFIG, N in epoch_N.pth, NAME) stand for values the reader chooses.
PLACEHOLDER_WORD = re.compile(r'(?:^|[/_.-])[A-Z]+(?=$|[/_.-])')


def _page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def _code(text: str) -> List[str]:
    """Fenced blocks and inline code spans."""
    blocks = FENCE.findall(text)
    return blocks + CODE_SPAN.findall(FENCE.sub('', text))


def _prose(text: str) -> str:
    """The text with its code removed, where links live."""
    return CODE_SPAN.sub('', FENCE.sub('', text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation other than '-' and '_' dropped,
    spaces to '-'. Link syntax in the heading counts by its text."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading).strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(page: Path) -> Set[str]:
    """Every heading's anchor, repeated headings numbered as GitHub does (-1, -2, ...)."""
    found: Set[str] = set()
    seen = {}
    for heading in HEADING.findall(FENCE.sub('', page.read_text(encoding='utf-8'))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f'{base}-{count}')
    return found


def relative_links(page: Path) -> Iterator[str]:
    for target in LINK.findall(_prose(page.read_text(encoding='utf-8'))):
        if not re.match(r'^[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto:
            yield target


def is_template(path: str) -> bool:
    """A path with placeholders (`configs/<config>.py`, `tools/slurm_*.sh`, `epoch_N.pth`,
    `configs/mask_rcnn_coat_{tiny,mini}_fpn_1x.py`, `tools/...`), not one to look up."""
    return (any(mark in path for mark in ('<', '{', '*', '...', '[', '$'))
            or PLACEHOLDER_WORD.search(path) is not None)


def repo_paths(page: Path) -> Iterator[str]:
    for code in _code(page.read_text(encoding='utf-8')):
        for path in REPO_PATH.findall(code):
            if not is_template(path):
                yield path.rstrip('.')  # a sentence's full stop


def test_docs_exist():
    assert (REPO / 'README.md').is_file()
    assert len(PAGES) > 1, 'docs/ holds no Markdown pages'


@pytest.mark.parametrize('page', PAGES, ids=_page_id)
def test_relative_links_resolve(page):
    broken: List[Tuple[str, str]] = []
    for target in relative_links(page):
        path, _, anchor = target.partition('#')
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append((target, 'no such file'))
        elif anchor and destination.suffix == '.md' and anchor not in anchors(destination):
            broken.append((target, f'no heading with anchor #{anchor} in {destination.name}'))
    assert not broken, f'{_page_id(page)}: broken links: {broken}'


@pytest.mark.parametrize('page', PAGES, ids=_page_id)
def test_named_tools_and_configs_exist(page):
    missing = sorted({path for path in repo_paths(page) if not (REPO / path).exists()})
    assert not missing, f'{_page_id(page)} names paths that do not exist: {missing}'


def test_path_matcher_checks_real_paths_and_skips_templates():
    assert not is_template('tools/train.py')
    assert not is_template('configs/mask_rcnn_coat_small_fpn_3x.py')
    assert not is_template('configs/imagenet/')
    for template in ('configs/<config>.py', 'tools/slurm_*.sh', 'tools/...',
                     'configs/mask_rcnn_coat_{tiny,mini}_fpn_1x.py', 'configs/CONFIG.py',
                     'work_dirs/run/epoch_N.pth'):
        assert is_template(template), template


def test_slug_follows_github():
    assert slug('Demo: Mask R-CNN + CoaT on synthetic shapes') == \
        'demo-mask-r-cnn--coat-on-synthetic-shapes'
    assert slug('`with_cp` and memory') == 'with_cp-and-memory'
    assert slug('Hub weights (hf-hub:)') == 'hub-weights-hf-hub'
