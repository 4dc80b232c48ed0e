"""Synthetic captions and photo folders for the benchmark rows
(``tools/benchmarks/``).

Captions are built from small word lists with a seeded RNG and photos from
scikit-image's sample images, so every run (and every machine) gets the same
data without downloading a dataset.
"""
import random
from typing import List, Tuple

_SUBJECTS = [
    'car', 'dog', 'cat', 'bicycle', 'woman', 'man', 'child', 'bird', 'boat',
    'horse', 'train', 'bus', 'house', 'tree', 'cup of coffee', 'pizza',
    'laptop', 'guitar', 'mountain', 'street', 'bridge', 'kitchen', 'garden',
    'beach', 'city skyline', 'teddy bear', 'motorcycle', 'airplane', 'sheep',
    'elephant', 'giraffe', 'umbrella', 'skateboard', 'sandwich', 'clock'
]
_ADJECTIVES = [
    'red', 'blue', 'green', 'yellow', 'old', 'new', 'small', 'large', 'shiny',
    'rusty', 'wooden', 'white', 'black', 'colorful', 'vintage', 'modern',
    'tiny', 'huge', 'wet', 'sunny', 'snowy', 'busy', 'quiet', 'happy',
    'sleepy', 'beautiful', 'crowded', 'empty', 'broken', 'bright'
]
_VERBS = [
    'parked near', 'sitting on', 'running across', 'standing next to',
    'lying under', 'flying over', 'walking along', 'waiting at',
    'playing with', 'looking at', 'leaning against', 'crossing'
]
_PLACES = [
    'the bridge', 'a table', 'the road', 'the river', 'a wall', 'the park',
    'a window', 'the station', 'the sidewalk', 'a fence', 'the lake',
    'a building', 'the market', 'the field', 'a tree'
]
_STARTS = [
    'a photo of', 'an image of', 'a picture of', 'a close-up of',
    'a blurry photo of', 'a black and white photo of', 'there is', '', ''
]
_ENDINGS = [
    '', '', '', '.', '.', ' in the morning', ' at night', ' on a rainy day',
    ', 2019', ' during summer', "'s view", '!'
]
# "Hard" captions exercise the tokenizer's slow path (ftfy + html + unicode).
_HARD = [
    'café {} près de la tour', '&amp; {} &quot;quoted&quot;',
    'Ein {} in München', '东京的{}', 'a {} 🚗💨 speeding', 'â€œ{}â€\x9d'
]


def make_benchmark_captions(n: int,
                            seed: int = 0,
                            hard_fraction: float = 0.0) -> List[str]:
    """Generate ``n`` realistic, mostly distinct English image captions.

    Captions look like ``'A photo of a red car parked near the old bridge.'``
    (about 5-15 words, sometimes capitalized, with a little punctuation and a
    number now and then).

    Args:
        n (int): Number of captions.
        seed (int): RNG seed; the same seed gives the same list.
            Defaults to 0.
        hard_fraction (float): Share of captions (0-1) rewritten into
            non-ASCII / HTML-escaped forms (accents, CJK, emoji, ``&amp;``,
            mojibake) that need full unicode cleaning. Defaults to 0.0.

    Returns:
        List[str]: The captions.
    """
    rng = random.Random(seed)
    captions = []
    for _ in range(n):
        start = rng.choice(_STARTS)
        article = 'a' if start else rng.choice(['a', 'the', 'one'])
        if start == 'there is':
            article = 'a'
        subject = f'{rng.choice(_ADJECTIVES)} {rng.choice(_SUBJECTS)}'
        if rng.random() < 0.4:
            subject = f'{rng.choice(_ADJECTIVES)} {subject}'
        place = rng.choice(_PLACES)
        if rng.random() < 0.5:
            place = place.replace(' ', f' {rng.choice(_ADJECTIVES)} ', 1)
        text = f'{start} {article} {subject} {rng.choice(_VERBS)} {place}'
        if rng.random() < 0.15:
            text += f' with {rng.randint(2, 12)} {rng.choice(_SUBJECTS)}s'
        text = text.strip() + rng.choice(_ENDINGS)
        if rng.random() < 0.3:
            text = text[0].upper() + text[1:]
        if rng.random() < hard_fraction:
            text = rng.choice(_HARD).format(text)
        captions.append(text)
    return captions


def write_photo_folder(folder: str, n: int,
                       size: Tuple[int, int] = (1024, 768)) -> List[str]:
    """Write ``n`` JPEGs to ``folder``: scikit-image's photos (astronaut,
    chelsea, coffee, rocket) resized bicubically to ``size``, quality 90,
    as a camera or a web crawl gives them.

    Args:
        folder (str): An existing folder.
        n (int): Number of files (the four photos in turn).
        size (tuple[int, int]): ``(width, height)`` in pixels. Defaults to
            ``(1024, 768)``; ``(1600, 1200)`` is 1.9 megapixels.

    Returns:
        list[str]: The paths, ``{folder}/00000.jpg`` onwards.
    """
    from PIL import Image
    from skimage import data
    photos = [
        Image.fromarray(getattr(data, name)()).resize(size, Image.BICUBIC)
        for name in ('astronaut', 'chelsea', 'coffee', 'rocket')
    ]
    paths = []
    for i in range(n):
        paths.append(f'{folder}/{i:05d}.jpg')
        photos[i % len(photos)].save(paths[-1], quality=90)
    return paths
