"""A deterministic built-in sentence generator: grammar templates and vocabulary per language.

``sample_sentence(rng, language, split)`` composes one to several clauses (statements, questions,
predicative and existential clauses, with optional time/place/manner adverbials) joined by
conjunctions, commas or full stops, so that espeak speaks about 2-10 s. English uses only words
from pocketsphinx's CMU dictionary (``tests/test_speech.py`` checks), so every English sentence can
be force-aligned. The other languages are held out as out-of-distribution speech.

Train/test split. Every open-class vocabulary entry (nouns, noun phrases, verbs, adjectives,
adverbials, names) belongs to exactly one split: within its category, entries are ranked by the
CRC-32 of their text and every fifth rank goes to ``"test"``. A sentence draws all open-class slots
from its own split (closed-class words such as articles, pronouns and conjunctions are shared).
Every clause has a verb entry, so a test sentence contains a verb no training sentence can contain:
train and test sentences are disjoint by construction, and test sentences also contain unseen nouns.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from vasa.errors import VasaError

SPLITS: tuple[str, ...] = ("train", "test")
_TEST_EVERY = 5  # one entry in five of each category is held out for "test"

# language -> category -> entries ("|" separates entries; English verbs are "base/past")
_VOCAB: dict[str, dict[str, str]] = {
    "en": {
        "noun": "farmer|teacher|doctor|painter|driver|baker|neighbour|sailor|student|dog|cat|horse|"
                "bird|rabbit|child|girl|boy|woman|man|king|queen|singer|pilot|soldier|nurse|writer|"
                "lawyer|father|mother|brother|sister|friend|uncle|cousin|captain|waiter",
        "thing": "boat|letter|window|garden|basket|bottle|picture|chair|table|ticket|jacket|bicycle|"
                 "apple|candle|blanket|bridge|fence|kettle|ladder|lamp|mirror|package|pencil|pillow|"
                 "rope|sandwich|shovel|suitcase|towel|wagon|bucket|guitar|hammer|map|necklace|cake|"
                 "carpet|engine|orange|envelope",
        "adj": "old|small|tall|quiet|happy|tired|young|clever|angry|gentle|friendly|lazy|brave|"
               "green|yellow|heavy|broken|shiny|empty|warm|cold|strange|little|famous|careful|"
               "nervous|proud|wooden|dusty|bright|lonely|polite|hungry|narrow|ancient",
        "verb_t": "paint/painted|open/opened|carry/carried|clean/cleaned|fix/fixed|find/found|"
                  "buy/bought|sell/sold|bring/brought|watch/watched|hide/hid|draw/drew|lift/lifted|"
                  "borrow/borrowed|push/pushed|pull/pulled|wash/washed|keep/kept|drop/dropped|"
                  "paint over/painted over|fold/folded|count/counted|measure/measured|"
                  "deliver/delivered|follow/followed|visit/visited|call/called|help/helped|"
                  "remember/remembered|forget/forgot|build/built|catch/caught|throw/threw",
        "verb_i": "laugh/laughed|sleep/slept|wait/waited|dance/danced|sing/sang|run/ran|"
                  "listen/listened|whisper/whispered|smile/smiled|work/worked|travel/travelled|"
                  "cook/cooked|rest/rested|swim/swam|arrive/arrived|complain/complained|"
                  "shout/shouted|walk/walked|stay/stayed|sit/sat|play/played|read/read",
        "place": "near the river|in the kitchen|behind the house|at the station|under the bridge|"
                 "in the garden|on the roof|by the window|at the market|in the village|"
                 "on the beach|at school|in the forest|near the church|at the harbour|"
                 "in the library|across the street|inside the barn|on the hill|at the office",
        "time": "yesterday|last night|this morning|after lunch|on monday|on friday|in the evening|"
                "every day|last summer|at noon|before dinner|early today|last week|on sunday|"
                "in the afternoon|after school|at midnight|tonight|this year|later",
        "manner": "quietly|slowly|carefully|again|quickly|happily|very gently|without a word|"
                  "twice|at once|with great care|in a hurry|all alone|by accident|together",
        "name": "anna|david|maria|peter|sarah|thomas|laura|james|emma|robert|julia|michael|lucy|"
                "daniel|rachel|simon|helen|martin|kate|oliver",
    },
    "es": {
        "subj": "el perro|la niña|mi hermano|mi hermana|el profesor|la vecina|el viejo marinero|"
                "la médica|el panadero|la abuela|el gato negro|mi amigo|la cantante|el niño pequeño",
        "verb_t": "come|mira|compra|busca|lleva|pinta|abre|cierra|lee|escribe|vende|limpia|"
                  "encuentra|prepara|guarda|trae",
        "obj": "una manzana|el libro|la puerta|una carta|el coche|la mesa|un regalo|la ventana|"
               "el pan|una silla|la camisa|un pastel|el periódico|una botella|la llave",
        "verb_i": "duerme|canta|trabaja|corre|camina|espera|baila|llora|sonríe|descansa|"
                  "cocina|escucha",
        "place": "en la cocina|cerca del río|en el parque|detrás de la casa|en la escuela|"
                 "junto a la ventana|en el mercado|en la playa|en la biblioteca|en el jardín",
        "time": "hoy|mañana|por la tarde|esta noche|todos los días|cada domingo|ahora|"
                "por la mañana|a veces|después de comer",
        "manner": "despacio|con cuidado|otra vez|muy rápido|en silencio|con alegría",
    },
    "de": {
        "subj": "der Hund|die Frau|das Kind|mein Bruder|meine Schwester|der Lehrer|die Katze|"
                "der alte Mann|das kleine Mädchen|unser Nachbar|die Ärztin|der Bäcker|Anna|Peter",
        "verb_t": "sieht|kauft|sucht|liest|öffnet|trägt|malt|findet|bringt|baut|hört|schreibt|"
                  "verkauft|putzt|holt|zeigt",
        "obj": "einen Apfel|den Brief|das Buch|die Tür|eine Tasse Tee|den Wagen|ein Geschenk|"
               "die Zeitung|einen Stuhl|das Fenster|einen Kuchen|die Jacke|den Schlüssel",
        "verb_i": "schläft|singt|arbeitet|lacht|wartet|tanzt|läuft|spielt|kocht|schwimmt|ruht|"
                  "weint",
        "place": "im Garten|in der Küche|am Fluss|im Park|hinter dem Haus|in der Schule|"
                 "am Fenster|auf dem Markt|im Wald|am Bahnhof",
        "time": "heute|morgen früh|am Abend|jeden Tag|am Sonntag|jetzt|oft|manchmal|"
                "nach dem Essen|im Sommer",
        "manner": "langsam|vorsichtig|wieder|sehr schnell|ganz leise|gern",
    },
    "fr": {
        "subj": "le chien|la femme|mon frère|ma sœur|Pierre|Marie|l'enfant|le professeur|"
                "la vieille dame|le petit garçon|notre voisin|le boulanger|la chanteuse|mon ami",
        "verb_t": "regarde|achète|cherche|lit|ouvre|porte|mange|trouve|prépare|écrit|vend|"
                  "attend|nettoie|dessine|apporte|garde",
        "obj": "une pomme|le livre|la porte|une lettre|la voiture|un cadeau|le journal|"
               "une chaise|du pain|un gâteau|la fenêtre|une bouteille|la clé",
        "verb_i": "dort|chante|travaille|rit|danse|court|marche|arrive|pleure|cuisine|"
                  "se repose|attend",
        "place": "dans la cuisine|près de la rivière|au parc|derrière la maison|à l'école|"
                 "devant la fenêtre|au marché|sur la plage|à la gare|dans le jardin",
        "time": "aujourd'hui|demain matin|ce soir|chaque jour|le dimanche|maintenant|souvent|"
                "parfois|après le déjeuner|en été",
        "manner": "lentement|doucement|encore|très vite|en silence|avec soin",
    },
    "cmn": {
        "subj": "我|你|他|她|我们|我的朋友|老师|我妈妈|这个孩子|那个老人|小王|我哥哥|医生|邻居",
        "verb_t": "买了|看了|吃了|找到了|拿了|写了|画了|带了|送了|洗了|做了|卖了",
        "obj": "一本书|一个苹果|一封信|一杯茶|一把椅子|一件衣服|一张画|很多水果|两个包子|"
               "一辆自行车|一条鱼|一束花",
        "verb_i": "睡觉|唱歌|工作|跑步|休息|学习|散步|做饭|游泳|看书|聊天|跳舞",
        "place": "在家里|在公园里|在学校|在厨房里|在河边|在商店里|在图书馆|在火车站|在山上|在海边",
        "time": "今天|昨天|明天早上|晚上|每天|上个星期|现在|下午|周末|去年夏天",
    },
}


@lru_cache(maxsize=None)
def _entries(language: str, category: str, split: str) -> tuple[str, ...]:
    """One split's entries of a vocabulary category (rank by CRC-32; every fifth rank is "test")."""
    items = _VOCAB[language][category].split("|")
    ranked = sorted(items, key=lambda w: (zlib.crc32(w.encode()), w))
    return tuple(w for r, w in enumerate(ranked) if (r % _TEST_EVERY == 0) == (split == "test"))


class _Picker:
    """Draws open-class words of one language and split from ``rng``."""

    def __init__(self, rng: np.random.Generator, language: str, split: str) -> None:
        self.rng, self.language, self.split = rng, language, split

    def __call__(self, category: str) -> str:
        items = _entries(self.language, category, self.split)
        return items[int(self.rng.integers(len(items)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def choice(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]


def _en_np(pick: _Picker, category: str) -> str:
    """An English noun phrase: determiner, optional adjective, noun (or a name)."""
    if category == "noun" and pick.chance(0.2):
        return pick("name").capitalize()
    det = pick.choice(("the", "the", "a", "my", "his", "her", "our", "their", "this", "that"))
    words = ([pick("adj")] if pick.chance(0.45) else []) + [pick(category)]
    if det == "a" and words[0][0] in "aeio":
        det = "an"
    return " ".join([det, *words])


def _en_subject(pick: _Picker) -> str:
    return pick.choice(("he", "she", "they", "we", "I", "you")) if pick.chance(0.25) else _en_np(pick, "noun")


def _en_adverbials(pick: _Picker) -> list[str]:
    return [pick(c) for c, p in (("manner", 0.25), ("place", 0.4), ("time", 0.35)) if pick.chance(p)]


def _en_clause(pick: _Picker) -> tuple[str, bool]:
    """One English clause and whether it is a question."""
    kind = pick.choice(("trans", "trans", "trans", "intrans", "intrans", "want", "seem", "there", "question"))
    if kind == "question":
        verb = pick("verb_t").split("/")[0]
        wh = pick.choice(("did", "why did", "when did", "where did"))
        return " ".join([wh, _en_subject(pick), verb, _en_np(pick, "thing")]), True
    if kind == "seem":
        return " ".join([_en_subject(pick), pick.choice(("seemed", "looked", "felt")), pick("adj")]), False
    if kind == "there":
        return " ".join(["there was", _en_np(pick, "thing"), pick("place")]), False
    subj = _en_subject(pick)
    if kind == "intrans":
        words = [subj, pick("verb_i").split("/")[1]]
    elif kind == "want":
        aux = pick.choice(("wanted to", "tried to", "decided to", "forgot to", "had to", "began to"))
        words = [subj, aux, pick("verb_t").split("/")[0], _en_np(pick, "thing")]
    else:
        words = [subj, pick("verb_t").split("/")[1], _en_np(pick, pick.choice(("thing", "thing", "noun")))]
    return " ".join(words + _en_adverbials(pick)), False


def _romance_germanic_clause(pick: _Picker) -> tuple[str, bool]:
    """Subject-verb-object clause for es/de/fr (present tense, third person singular)."""
    words = [pick("subj")]
    if pick.chance(0.6):
        words += [pick("verb_t")] + ([pick("time")] if pick.chance(0.3) else []) + [pick("obj")]
    else:
        words += [pick("verb_i")] + ([pick("time")] if pick.chance(0.3) else [])
    words += [pick(c) for c, p in (("place", 0.45), ("manner", 0.25)) if pick.chance(p)]
    return " ".join(words), pick.chance(0.1)


def _cmn_clause(pick: _Picker) -> tuple[str, bool]:
    """Mandarin clause: subject [time] [place] verb [object]."""
    words = [pick("subj")] + [pick(c) for c, p in (("time", 0.5), ("place", 0.5)) if pick.chance(p)]
    words += [pick("verb_t"), pick("obj")] if pick.chance(0.6) else [pick("verb_i")]
    return "".join(words), pick.chance(0.1)


_CLAUSE = {"en": _en_clause, "es": _romance_germanic_clause, "de": _romance_germanic_clause,
           "fr": _romance_germanic_clause, "cmn": _cmn_clause}
_CONJUNCTIONS = {
    "en": ("and", "but", "because", "so", "while", "when", "although", "before", "after"),
    "es": ("y", "pero", "porque", "cuando", "mientras"),
    "de": ("und", "aber", "denn", "oder"),
    "fr": ("et", "mais", "parce que", "quand", "pendant que"),
    "cmn": ("而且", "但是", "因为", "所以", "然后"),
}


def _length(language: str, text: str) -> float:
    """Approximate spoken length in English-word equivalents (a Mandarin syllable counts 0.75)."""
    return len(text) * 0.75 if language == "cmn" else len(text.split())


def _finish(language: str, clause: str, question: bool) -> str:
    if language == "cmn":
        return clause + ("吗？" if question else "。")
    mark = "?" if question else "."
    if language == "es" and question:
        return "¿" + clause[0].upper() + clause[1:] + mark
    return clause[0].upper() + clause[1:] + mark


def sample_sentence(rng: np.random.Generator, language: str, split: str = "train") -> str:
    """A random utterance text of roughly 2-10 s of speech, deterministic given ``rng``'s state.

    The target length is drawn uniformly between 6 and 26 English-word equivalents; clauses are
    added until it is reached, joined by a conjunction (optionally after a comma) or a full stop.
    """
    if language not in _CLAUSE:
        raise VasaError(f"no sentence grammar for language {language!r}; use one of {', '.join(_CLAUSE)}")
    if split not in SPLITS:
        raise VasaError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    pick = _Picker(rng, language, split)
    target = float(rng.uniform(6, 26))
    sentences: list[str] = []
    clause, question = _CLAUSE[language](pick)
    while True:
        total = _length(language, " ".join(sentences + [clause]))
        if total >= target - 2:
            break
        nxt, nxt_question = _CLAUSE[language](pick)
        if question or nxt_question or pick.chance(0.25):  # questions stand alone
            sentences.append(_finish(language, clause, question))
            clause, question = nxt, nxt_question
            continue
        sep = "，" if language == "cmn" else (", " if pick.chance(0.5) else " ")
        glue = "" if language == "cmn" else " "
        clause = clause + sep + pick.choice(_CONJUNCTIONS[language]) + glue + nxt
    sentences.append(_finish(language, clause, question))
    return " ".join(sentences) if language != "cmn" else "".join(sentences)
