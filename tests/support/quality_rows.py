"""Hand-written example rows that obey their attributes, one or more per category, for the quality tests."""

from __future__ import annotations

from transforms import recipe
from transforms.records import example_fields

_RETRIEVAL_EN = {
    "task": "Given a question about plant biology, retrieve passages that answer it.",
    "query_type": "common",
    "query_length": "5 to 15 words",
    "difficulty": "high school",
    "clarity": "clear",
    "num_words": "50",
    "language": "en",
    "user_query": "how do green plants turn sunlight into stored chemical energy",
    "positive_document": (
        "Green plants capture light with chlorophyll inside their chloroplasts. During photosynthesis the "
        "absorbed energy splits water molecules, releases oxygen and drives the fixation of carbon dioxide "
        "into glucose through the Calvin cycle. The glucose stores the energy of sunlight in chemical bonds "
        "that the plant later uses for growth and respiration."
    ),
    "hard_negative_document": (
        "Solar panels on rooftops turn sunlight into electricity using silicon cells. When photons strike "
        "the semiconductor, they free electrons that flow as a current through an inverter into the home. "
        "Engineers place the panels at an angle facing the equator so that they collect as much light as "
        "possible during the day throughout the year."
    ),
}

_RETRIEVAL_DE = {
    "task": "Given a question about European history, retrieve passages that answer it.",
    "query_type": "long-tail",
    "query_length": "5 to 15 words",
    "difficulty": "college",
    "clarity": "clear",
    "num_words": "50",
    "language": "de",
    "user_query": "Warum wurde die Berliner Mauer im Jahr 1961 gebaut",
    "positive_document": (
        "Die Regierung der DDR ließ die Berliner Mauer im August 1961 errichten, weil immer mehr Menschen "
        "über West-Berlin in den Westen flohen. Vor allem junge und gut ausgebildete Fachkräfte verließen "
        "das Land, was die Wirtschaft schwer belastete. Die Mauer sollte diese Abwanderung stoppen und "
        "wurde offiziell als antifaschistischer Schutzwall bezeichnet."
    ),
    "hard_negative_document": (
        "Der Fall der Berliner Mauer am neunten November 1989 war ein Wendepunkt der deutschen Geschichte. "
        "Tausende Menschen versammelten sich an den Grenzübergängen, nachdem eine missverständliche "
        "Pressekonferenz die sofortige Reisefreiheit angekündigt hatte. In den folgenden Monaten begann "
        "der Abriss der Anlagen und die Wiedervereinigung wurde vorbereitet."
    ),
}

_CLASSIFICATION_EN = {
    "task": "Classify a news headline and lead into its topic.",
    "num_words": "at least 10",
    "difficulty": "high school",
    "clarity": "clear",
    "language": "en",
    "input_text": (
        "The national team won the championship final on Sunday after a dramatic penalty shootout that "
        "kept thousands of fans on their feet until the very last kick."
    ),
    "label": "Sports",
    "misleading_label": "Entertainment",
}

_MATCHING_SHORT_SW = {
    "task": "Given a question, find another question that asks the same thing.",
    "language": "sw",
    "input": "Ninawezaje kujifunza kupika chakula kitamu nyumbani kwa haraka?",
    "positive_document": "Ni njia gani rahisi ya kujua kupika vyakula vizuri nikiwa nyumbani?",
}

_MATCHING_LONG_FR = {
    "task": "Given a product review, find a review that expresses the same opinion.",
    "language": "fr",
    "input": (
        "J'ai acheté cet aspirateur il y a trois mois et je suis très satisfait. Il est léger, puissant et "
        "la batterie tient presque une heure, ce qui suffit pour nettoyer tout mon appartement. Au début, "
        "j'avais des doutes, car les modèles sans fil que j'avais essayés chez des amis perdaient vite leur "
        "force dès que la charge baissait. Ici, rien de tel : la puissance reste constante jusqu'au bout, "
        "même sur les tapis épais du salon. Le réservoir se vide d'un seul geste au-dessus de la poubelle, "
        "sans que la poussière ne retombe partout. Les accessoires sont bien pensés, surtout la petite "
        "brosse pour les plinthes et le long embout qui passe sous le canapé. Le bruit est supportable, "
        "on peut encore écouter la radio pendant le ménage. Je regrette seulement que le chargeur mural "
        "soit un peu encombrant dans l'entrée. Le filtre se rince à l'eau froide et sèche en une nuit. "
        "Après une centaine d'utilisations, la batterie ne montre aucun signe de faiblesse. Ma fille, "
        "allergique aux acariens, remarque aussi que l'air de sa chambre semble plus sain depuis que nous "
        "passons l'appareil deux fois par semaine. Pour le prix demandé, je le recommande sans hésiter à "
        "toute famille qui veut gagner du temps."
    ),
    "positive_document": (
        "Cet appareil m'a vraiment convaincu depuis que je l'utilise chaque semaine. Sa puissance "
        "d'aspiration est excellente, il se manie facilement et son autonomie permet de faire toute la maison "
        "sans recharger. Avant lui, nous avions un gros modèle à câble qui pesait lourd dans l'escalier et "
        "dont le fil s'accrochait aux pieds des chaises. Désormais, deux étages y passent en une seule "
        "séance, moquettes comprises. Vider le bac est propre et rapide. Les embouts fournis couvrent tous "
        "les besoins : coins étroits, rideaux, sièges de voiture. Mon mari apprécie qu'il tienne accroché "
        "au mur du garage, toujours prêt. Côté bruit, il reste discret, les enfants dorment pendant que je "
        "nettoie le couloir. Un défaut mineur : la notice est mal traduite et il faut deviner certains "
        "réglages. L'entretien se limite à laver la mousse de temps en temps. Au bout de six mois, "
        "l'accumulateur garde toute son endurance. Nous avons même offert le même à mes beaux-parents, "
        "qui en sont ravis à leur tour. Franchement, c'est l'achat ménager le plus réussi de notre année, "
        "et je le conseille volontiers à quiconque hésite encore entre plusieurs marques."
    ),
}

_TRIPLET_ES = {
    "unit": "sentence",
    "difficulty": "high school",
    "high_score": "4.5",
    "low_score": "2.5",
    "language": "es",
    "S1": "El médico recomendó al paciente caminar treinta minutos cada día para mejorar su salud.",
    "S2": "Según el doctor, el enfermo debería pasear media hora diaria para sentirse más sano.",
    "S3": "El paciente visitó al médico porque le dolía la rodilla después de correr una maratón.",
}

_BITEXT_EN_DE = {
    "unit": "sentence",
    "difficulty": "high school",
    "high_score": "5",
    "low_score": "2",
    "source_language": "en",
    "target_language": "de",
    "S1": "The library will be closed on Monday because the heating system is being repaired.",
    "S2": "Die Bibliothek bleibt am Montag geschlossen, weil die Heizungsanlage repariert wird.",
    "S3": "Die Bibliothek bleibt am Montag geöffnet, obwohl die Heizungsanlage kaputt ist.",
}

CLEAN = {
    "retrieval-en": ("text-retrieval", _RETRIEVAL_EN),
    "retrieval-de": ("text-retrieval", _RETRIEVAL_DE),
    "classification-en": ("text-classification", _CLASSIFICATION_EN),
    "matching-short-sw": ("text-matching-short", _MATCHING_SHORT_SW),
    "matching-long-fr": ("text-matching-long", _MATCHING_LONG_FR),
    "triplet-es": ("monolingual-triplet", _TRIPLET_ES),
    "bitext-en-de": ("bitext-retrieval", _BITEXT_EN_DE),
}


def make_row(name: str, example_id: str | None = None, **overrides) -> dict:
    """A complete example row (every field of its category's schema) built from the clean sample ``name``."""
    category, values = CLEAN[name]
    task_type = recipe.get_task_type(category)
    row = {
        "example_id": example_id or f"id-{name}",
        "category": category,
        "model": "hand-written",
        "template": task_type.template,
        "template_sha256": "0" * 16,
        "run_seed": 42,
        "sampling_seed": 1,
        "attempts": 1,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "quality_pass": True,
        "quality_checks": [],
        "quality_failures": [],
        "duplicate_of": None,
        "sim_query_positive": None,
        "sim_query_negative": None,
        "mined_negatives": [],
        "mined_negative_scores": [],
    }
    row.update(values)
    row.update(overrides)
    missing = {f.name for f in example_fields(task_type)} - set(row)
    assert not missing, missing
    return row
