"""The training side of the drift features (a version's "reference"): the bins and counts of its training requests.

A training request is what production would have been asked at each user turn of a training conversation: every
user turn, not only the last. Openings (a conversation's first user turn) and follow-ups are counted apart, because
a log of first questions must be compared with first questions: the report mixes the two sides' counts in the
production window's own proportions (engine.monitor.drift). System prompts are never part of a request, on either
side; a production request that starts with one of the training system prompts has it removed before it is placed.

Fitted once per training split and tokenizer, when the first production log of the version is imported (or by its
first report, whichever comes first), and kept in the workspace under monitor/references/<key>/ as JSON and NumPy arrays (read without
pickle). A report in a new process - the CLI, another dashboard - then loads a few arrays instead of importing
scikit-learn (about a second on two cores) and clustering the training data again.

The topics are fitted with scikit-learn (TF-IDF + k-means). Putting a request in its topic is that vectorizer's
`transform` followed by k-means' nearest centre, done here with NumPy on the stored vocabulary, idf weights and
centres (the same tokens, bigrams, sublinear counts, idf and L2 norm); tests check it gives scikit-learn's own labels
on real data, so the two cannot drift apart unnoticed."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np

from engine.data import split, tokens, versions
from engine.data.checks import language
from engine.data.loading import load_records
from engine.data.quality import usable
from engine.store import db, workspace
from engine.store.tables import Split

FORMAT = 2  # bump when what is stored or how it is fitted changes: older references are then fitted again
MAX_TOPICS = 8
MIN_REQUESTS = 20
MIN_LANGUAGE_SHARE = 0.01
MAX_SYSTEM_PROMPTS = 20  # the most common training system prompts a production request is cleaned of
POSITIONS = ("opening", "follow-up")  # row 0 and row 1 of each feature's counts  # languages under 1% of the training requests are pooled as "other"
VECTORIZER = {"max_features": 5000, "sublinear_tf": True, "ngram_range": (1, 2), "min_df": 2}
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def shares(labels: np.ndarray, bins: int) -> np.ndarray:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=bins)[:bins].astype(float)
    return counts / counts.sum() if counts.sum() else counts


def counts_by_position(labels: np.ndarray, follow_up: np.ndarray, bins: int) -> np.ndarray:
    """(2, bins) counts: openings in row 0, follow-ups in row 1."""
    labels, follow_up = np.asarray(labels, dtype=int), np.asarray(follow_up, dtype=bool)
    return np.stack([np.bincount(labels[~follow_up], minlength=bins)[:bins],
                     np.bincount(labels[follow_up], minlength=bins)[:bins]]).astype(float)


@dataclass
class Reference:
    """The training side of each feature: its bins, its counts (openings and follow-ups), and how to put a request
    in a bin."""
    length_edges: np.ndarray
    length_counts: np.ndarray  # (2, bins): openings, follow-ups
    topic_counts: np.ndarray
    topic_names: list[str]
    languages: list[str]
    language_counts: np.ndarray
    vocabulary: dict[str, int]  # the TF-IDF terms (words and word pairs) and their columns
    idf: np.ndarray
    centers: np.ndarray  # k-means' centres, one row per topic
    tokenizer: str  # the folder whose tokenizer counts request lengths
    systems: list[str]  # the training system prompts, the most common first

    def bins(self, feature: str, texts: list[str]) -> np.ndarray:
        """Each text's bin of one feature ("length", "topic" or "language"); a text that repeats (production traffic
        is full of them) is placed once."""
        place = {"length": self.length_bins, "topic": self.topic_bins, "language": self.language_bins}[feature]
        unique = list(dict.fromkeys(texts))
        found = place(unique)
        if len(unique) == len(texts):
            return found
        index = {text: i for i, text in enumerate(unique)}
        return found[np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts))]

    def training_counts(self, feature: str) -> np.ndarray:
        return {"length": self.length_counts, "topic": self.topic_counts, "language": self.language_counts}[feature]

    def training_shares(self, feature: str, follow_ups: float = 0.0) -> np.ndarray:
        """The training shares of a feature's bins, openings and follow-ups mixed in the given proportion (the
        production sample's); a training set without follow-ups stands for both."""
        counts = self.training_counts(feature)
        opening = counts[0] / counts[0].sum()
        later = counts[1] / counts[1].sum() if counts[1].sum() else opening
        return (1 - follow_ups) * opening + follow_ups * later

    def training_size(self, feature: str, follow_ups: float = 0.0) -> int:
        """How many training requests the mixed shares rest on (Kish's effective size of the weighted mix): the
        openings alone for a log of openings."""
        counts = self.training_counts(feature).sum(axis=1)
        if not counts[1]:
            return int(counts[0])
        weights = np.array([1 - follow_ups, follow_ups])
        return int(max(1.0, 1.0 / sum(w * w / c for w, c in zip(weights, counts) if w > 0)))

    def without_system(self, texts: list[str]) -> list[str]:
        """The texts with a leading training system prompt removed (a log that stores the prompt with it); each
        text is compared by startswith only, so the cost stays linear in its length."""
        if not self.systems:
            return list(texts)
        ordered = sorted(self.systems, key=len, reverse=True)
        out = []
        for text in texts:
            prompt = next((p for p in ordered if text.startswith(p)), None)
            out.append(text[len(prompt):].lstrip() if prompt else text)
        return out

    @cached_property
    def counter(self) -> tokens.TokenCounter:
        return tokens.load_counter(self.tokenizer)

    def length_bins(self, texts: list[str]) -> np.ndarray:
        return np.searchsorted(self.length_edges, np.asarray(self.counter.count(texts)), side="right")

    def topic_bins(self, texts: list[str]) -> np.ndarray:
        """Each text's nearest centre, as KMeans.predict(TfidfVectorizer.transform(texts)) gives it."""
        docs: list[int] = []
        terms: list[int] = []
        vocabulary = self.vocabulary
        for i, text in enumerate(texts):
            words = TOKEN.findall(text.lower())
            for gram in chain(words, map(" ".join, zip(words, words[1:]))):
                found = vocabulary.get(gram)
                if found is not None:
                    docs.append(i)
                    terms.append(found)
        n, width = len(texts), len(self.idf)
        pairs, counts = np.unique(np.asarray(docs, np.int64) * width + np.asarray(terms, np.int64),
                                  return_counts=True)  # sorted: each row's terms in column order, as in CSR
        row, column = pairs // width, pairs % width
        weight = (1.0 + np.log(counts)) * self.idf[column]
        norm = np.sqrt(np.bincount(row, weight * weight, minlength=n))
        weight = weight / norm[row]
        dots = np.stack([np.bincount(row, weight * center[column], minlength=n) for center in self.centers], 1)
        # squared distance up to the row's own norm, which is the same for every centre
        return np.argmin((self.centers ** 2).sum(1)[None, :] - 2 * dots, axis=1)

    def language_bins(self, texts: list[str]) -> np.ndarray:
        index = {lang: i for i, lang in enumerate(self.languages)}
        other = len(self.languages)
        return np.array([index.get(lang, other) for lang in language.languages(texts)], dtype=int)


def training_requests(made: Split) -> tuple[list[str], list[int], list[str]]:
    """(every user turn of the split's training conversations, its user-turn number (1 = the opening), the
    conversations' system prompts, the most common first)."""
    from collections import Counter

    texts: list[str] = []
    turns: list[int] = []
    systems: Counter[str] = Counter()
    for record in usable(load_records(split.split_path(made, "train")).records):
        turn = 0
        for message in record.turns:
            content = message.get("content")
            if not isinstance(content, str):
                continue
            if message.get("role") == "system" and content.strip():
                systems[content.strip()] += 1
            elif message.get("role") == "user":
                turn += 1
                texts.append(content)
                turns.append(turn)
    return texts, turns, [text for text, _ in systems.most_common(MAX_SYSTEM_PROMPTS)]


def _tokenizer_folder(base_model: str) -> Path:
    """The base model's tokenizer where it has one, else the demo tokenizer."""
    folder = Path(base_model)
    return folder if (folder / "tokenizer.json").is_file() else tokens.default_tokenizer_path()


def _key(made: Split, tokenizer: Path) -> str:
    """What the reference is fitted from: the training file's bytes, the tokenizer file and how it is fitted."""
    stat = (tokenizer / "tokenizer.json").stat()
    facts = [FORMAT, VECTORIZER, MAX_TOPICS, MIN_LANGUAGE_SHARE, str(tokenizer.resolve()), stat.st_size,
             stat.st_mtime_ns, versions.sha256_file(split.split_path(made, "train"))]
    return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:32]


def folder() -> Path:
    return workspace.current().root / "monitor" / "references"


def place_of(made: Split, base_model: str) -> Path:
    """Where the reference of this split and base model is kept."""
    return folder() / _key(made, _tokenizer_folder(base_model))


_loaded: dict[str, Reference] = {}  # per process, by the file it was read from


def load(split_id: int | None, base_model: str) -> Reference | None:
    """The split's reference (from memory, else the workspace, else fitted and kept); None when the split is gone
    or has fewer than MIN_REQUESTS training requests."""
    with db.session() as s:
        made = s.get(Split, split_id) if split_id is not None else None
    if made is None or not split.split_path(made, "train").is_file():
        return None
    tokenizer = _tokenizer_folder(base_model)
    place = place_of(made, base_model)
    if str(place) in _loaded:
        return _loaded[str(place)]
    ref = _read(place)
    if ref is None:
        ref = fit(*training_requests(made), tokenizer=tokenizer)
        if ref is None:
            return None
        shutil.rmtree(place, ignore_errors=True)  # a damaged copy, if any, is replaced
        _write(place, ref)
    _loaded[str(place)] = ref
    return ref


def length_bins_for(n: int) -> int:
    """Fewer length bins for fewer training requests: each bin's share must be estimated from enough of them for
    an unchanged sample to stay well under the stable line (two samples of sizes n and m differ by a PSI of about
    (bins - 1) * (1/n + 1/m))."""
    return int(min(10, max(4, n // 40)))


def fit(requests: list[str], turns: list[int] | None = None, systems: list[str] | None = None,
        tokenizer: Path | None = None) -> Reference | None:
    """Bins and counts of the training requests (scikit-learn's TF-IDF + k-means for the topics); each request's
    user-turn number (1 = a conversation's opening) decides which row of the counts it adds to."""
    turns = list(turns) if turns is not None else [1] * len(requests)
    kept = [(t, n) for t, n in zip(requests, turns) if t.strip()]
    if len(kept) < MIN_REQUESTS:
        return None
    requests = [t for t, _ in kept]
    follow_up = np.array([n > 1 for _, n in kept], dtype=bool)
    counter = tokens.load_counter(tokenizer or tokens.default_tokenizer_path())
    lengths = np.asarray(counter.count(requests))
    bins = length_bins_for(len(requests))
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1]))
    vectorizer, kmeans = fit_topics(requests)
    found = language.languages(requests)
    share = {lang: found.count(lang) / len(found) for lang in set(found)}
    languages = sorted(lang for lang, s in share.items() if s >= MIN_LANGUAGE_SHARE)
    ref = Reference(length_edges=edges, length_counts=np.zeros((2, len(edges) + 1)), topic_counts=np.zeros(1),
                    languages=languages, language_counts=np.zeros(1), tokenizer=str(tokenizer),
                    systems=list(systems or []), **topic_fields(vectorizer, kmeans))
    ref.counter = counter  # the one already loaded
    # Every side of every feature is placed by the same functions the production requests go through.
    ref.length_counts = counts_by_position(np.searchsorted(edges, lengths, side="right"), follow_up, len(edges) + 1)
    ref.topic_counts = counts_by_position(ref.topic_bins(requests), follow_up, len(ref.centers))
    ref.language_counts = counts_by_position(ref.language_bins(requests), follow_up, len(languages) + 1)
    return ref


def fit_topics(requests: list[str]):
    """(the fitted TfidfVectorizer, the fitted KMeans) of the training requests. The number of topics is the one
    (2 to MAX_TOPICS, at least 50 requests a topic) with the best silhouette: a fixed 8 split five real intents
    into pieces whose shares matched nothing in the data."""
    from sklearn.cluster import KMeans  # the scientific stack costs a second to import: only when fitting
    from sklearn.feature_extraction.text import TfidfVectorizer  # (same)
    from sklearn.metrics import silhouette_score  # (same)

    vectorizer = TfidfVectorizer(**VECTORIZER)
    matrix = vectorizer.fit_transform(requests)
    best, best_score = None, -2.0
    for k in range(2, max(2, min(MAX_TOPICS, len(requests) // 50)) + 1):
        kmeans = KMeans(n_clusters=k, n_init=4, random_state=0).fit(matrix)
        if len(set(kmeans.labels_)) < 2:
            continue
        score = silhouette_score(matrix, kmeans.labels_, sample_size=min(len(requests), 2000), random_state=0)
        if score > best_score + 1e-9:
            best, best_score = kmeans, score
    if best is None:
        best = KMeans(n_clusters=2, n_init=4, random_state=0).fit(matrix)
    return vectorizer, best


def topic_fields(vectorizer, kmeans) -> dict:
    """What the reference keeps of the fitted topics: vocabulary, idf, centres, and each topic named by its three
    heaviest terms."""
    terms = vectorizer.get_feature_names_out()
    centers = np.asarray(kmeans.cluster_centers_, dtype=float)
    return {"vocabulary": {str(t): i for i, t in enumerate(terms)}, "idf": np.asarray(vectorizer.idf_, float),
            "centers": centers,
            "topic_names": ["topic: " + ", ".join(terms[np.argsort(row)[::-1][:3]]) for row in centers]}


ARRAYS = ("length_edges", "length_counts", "topic_counts", "language_counts", "idf", "centers")


def _write(place: Path, ref: Reference) -> None:
    """Into a fresh folder, then renamed into place: a reader never sees half a reference, and two processes that
    fit the same one at once both succeed (the second's copy is dropped)."""
    place.parent.mkdir(parents=True, exist_ok=True)
    tmp = place.with_name(f"{place.name}.part-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        np.savez(tmp / "arrays.npz", **{name: getattr(ref, name) for name in ARRAYS})
        terms = sorted(ref.vocabulary, key=ref.vocabulary.__getitem__)
        (tmp / "reference.json").write_text(json.dumps(
            {"format": FORMAT, "topic_names": ref.topic_names, "languages": ref.languages, "terms": terms,
             "tokenizer": ref.tokenizer, "systems": ref.systems}), encoding="utf-8")
        tmp.rename(place)
    except OSError:  # already there (fitted by another process), or the disk refused: this process keeps its own
        shutil.rmtree(tmp, ignore_errors=True)


def _read(place: Path) -> Reference | None:
    """A stored reference, or None when there is none or it cannot be read (it is then fitted again)."""
    try:
        meta = json.loads((place / "reference.json").read_text(encoding="utf-8"))
        with np.load(place / "arrays.npz", allow_pickle=False) as stored:
            arrays = {name: np.asarray(stored[name]) for name in ARRAYS}
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("format") != FORMAT or len(meta.get("terms", [])) != len(arrays["idf"]):
        return None
    return Reference(**arrays, topic_names=list(meta["topic_names"]), languages=list(meta["languages"]),
                     vocabulary={t: i for i, t in enumerate(meta["terms"])}, tokenizer=str(meta["tokenizer"]),
                     systems=[str(t) for t in meta.get("systems", [])])


_failed: set[tuple] = set()  # per process: a reference that could not be fitted is not tried on every import


def prepare(facts: dict) -> None:
    """Fit and keep the reference of a version (its lineage facts) if it is not kept yet. A failure here is not the
    import's: the first report fits it again and says what is wrong."""
    wanted = (str(workspace.root()), facts.get("config", {}).get("split_id"), str(facts.get("base_model")))
    if wanted in _failed:
        return
    try:
        load(wanted[1], wanted[2])
    except Exception:  # noqa: BLE001 - a cache being filled; the report path raises the same error with context
        _failed.add(wanted)
