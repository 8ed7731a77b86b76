#!/usr/bin/env python3
# Writes configs/palettes/many.toml to stdout (the list of what it left out to stderr):
#   pip download webcolors==24.11.1 --no-deps -d /tmp/wc && (cd /tmp/wc && unzip -o webcolors-*.whl)
#   cd /tmp/wc && python3 /path/to/configs/palettes/many.py > body.toml
"""The training pool of colours (configs/palettes/many.toml): the benchmark's eleven and
CSS's named colours (webcolors 24.11.1), names split into words, minus what
configs/palettes/unseen.toml names, duplicates, colours the stem cannot tell from the
table and colours within 20 per channel of one kept before."""
import sys
sys.path.insert(0, '.')
from webcolors._definitions import _CSS3_NAMES_TO_HEX as C
fix = {"blanchedalmond": "blanched almond", "dimgray": "dim gray", "chartreuse": "chartreuse",
       "goldenrod": "goldenrod", "cornsilk": "cornsilk", "lawngreen": "lawn green",
       "honeydew": "honeydew", "aquamarine": "aquamarine", "seashell": "seashell",
       "burlywood": "burlywood", "firebrick": "firebrick", "cornflowerblue": "cornflower blue",
       "papayawhip": "papaya whip", "whitesmoke": "white smoke",
       "lightgoldenrodyellow": "light goldenrod yellow", "darkgoldenrod": "dark goldenrod",
       "palegoldenrod": "pale goldenrod", "mediumaquamarine": "medium aquamarine",
       "peachpuff": "peach puff", "oldlace": "old lace", "gainsboro": "gainsboro",
       "moccasin": "moccasin"}
parts = """dark light medium pale deep hot lime forest sea sky royal midnight navajo alice antique
blue violet cadet chocolate coral crimson cyan gray green khaki magenta olive drab orange orchid
red salmon slate turquoise dodger floral white ghost gold indian indigo ivory lavender blush
lemon chiffon linen maroon purple spring mint cream misty rose navy peru pink plum powder rosy
saddle brown sandy shell sienna silver snow steel tan teal thistle tomato wheat smoke yellow
beige bisque black azure""".split()
parts = sorted(set(parts), key=len, reverse=True)
def split(n):
    if not n:
        return []
    for p in parts:
        if n.startswith(p):
            r = split(n[len(p):])
            if r is not None:
                return [p] + r
    return None
bench = [("blue", (78, 121, 167)), ("red", (255, 87, 89)), ("green", (89, 169, 78)),
         ("orange", (242, 142, 43)), ("yellow", (237, 201, 72)), ("purple", (176, 122, 161)),
         ("pink", (255, 157, 167)), ("cyan", (118, 183, 178)), ("brown", (156, 117, 95)),
         ("white", (255, 255, 255)), ("gray", (186, 176, 172))]
unseen = {"teal", "maroon", "navy", "olive", "lime", "violet", "gold", "salmon"}
names = {}
for n, h in C.items():
    if "grey" in n or n in ("aqua", "fuchsia"):
        continue
    names[fix.get(n) or " ".join(split(n))] = tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
kept, dropped = list(bench), []
for w in sorted(names):
    rgb = names[w]
    if w in dict(bench):
        dropped.append((w, "a benchmark name"))
    elif set(w.split()) & unseen:
        dropped.append((w, "an unseen word"))
    elif max(abs(c - 51) for c in rgb) < 48:
        dropped.append((w, "too near the table"))
    elif near := [k for k, r in kept if all(abs(a - b) <= 20 for a, b in zip(rgb, r))]:
        dropped.append((w, "near " + near[0]))
    else:
        kept.append((w, rgb))
print(len(kept), "kept;", len(dropped), "dropped:", "; ".join(f"{w} ({why})" for w, why in dropped), file=sys.stderr)
for w, (r, g, b) in sorted(kept):
    q = '"' + w + '"' if " " in w else w
    print(f"{q} = [{r}, {g}, {b}]")
