"""A deterministic demo back office: French retail data and photos made with Pillow.

    python -m passerelle_demo seed --dsn postgresql://... --articles 1000 --seed 42
    python -m passerelle_demo change --dsn ...      # the few edits `make demo` makes between runs

Generation is vectorised (numpy) and loaded with COPY: 1,000 articles with photos take a
couple of seconds, and 1,000,000 articles (photos off) fit the benchmarks.
References: articles ``ART-000001``; variants ``ART-000001-M-BLEU``; customers ``CLI-000001``.
"""

from __future__ import annotations

import argparse
import io
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg

from passerelle.db import apply_sql, copy_in

# (code, name, parent code, kind of articles)
FAMILIES = [
    ("MAI", "Maison", None, "home"),
    ("MAI-CUI", "Cuisine", "MAI", "home"),
    ("MAI-CUI-CAS", "Casseroles et poêles", "MAI-CUI", "home"),
    ("MAI-CUI-UST", "Ustensiles", "MAI-CUI", "home"),
    ("MAI-DEC", "Décoration", "MAI", "home"),
    ("MAI-LIN", "Linge de maison", "MAI", "home"),
    ("JAR", "Jardin", None, "garden"),
    ("JAR-OUT", "Outillage", "JAR", "garden"),
    ("JAR-ARR", "Arrosage", "JAR", "garden"),
    ("MOD", "Mode", None, "fashion"),
    ("MOD-FEM", "Femme", "MOD", "fashion"),
    ("MOD-FEM-ROB", "Robes", "MOD-FEM", "fashion"),
    ("MOD-FEM-PUL", "Pulls et gilets", "MOD-FEM", "fashion"),
    ("MOD-HOM", "Homme", "MOD", "fashion"),
    ("MOD-HOM-CHE", "Chemises", "MOD-HOM", "fashion"),
    ("EPI", "Épicerie fine", None, "food"),
    ("EPI-CON", "Confitures et miels", "EPI", "food"),
    ("EPI-CAF", "Cafés et thés", "EPI", "food"),
]
LEAVES = [f for f in FAMILIES if not any(g[2] == f[0] for g in FAMILIES)]

NOUNS = {
    "home": [
        "Casserole",
        "Poêle",
        "Sauteuse",
        "Fouet",
        "Louche",
        "Planche à découper",
        "Vase",
        "Bougie",
        "Coussin",
        "Nappe",
        "Plaid",
        "Torchon",
        "Miroir",
        "Cadre photo",
    ],
    "garden": [
        "Sécateur",
        "Bêche",
        "Râteau",
        "Arrosoir",
        "Tuyau d'arrosage",
        "Transplantoir",
        "Cisaille",
        "Binette",
        "Pistolet d'arrosage",
    ],
    "fashion": ["Robe", "Pull", "Gilet", "Chemise", "Cardigan", "Tunique", "Chemisier"],
    "food": ["Confiture", "Miel", "Café moulu", "Thé vert", "Thé noir", "Pâte à tartiner", "Tisane"],
}
QUALIFIERS = {
    "home": ["inox", "fonte", "céramique", "bambou", "lin lavé", "verre soufflé", "coton bio", "chêne massif"],
    "garden": ["professionnel", "ergonomique", "acier trempé", "léger", "à gâchette", "télescopique"],
    "fashion": ["en laine mérinos", "en coton bio", "en lin", "fluide", "col V", "rayé", "à fleurs"],
    "food": ["de Provence", "bio", "artisanal", "des Cévennes", "d'Éthiopie", "aux agrumes", "de lavande"],
}
SIZES_OF = {
    "home": ["16 cm", "20 cm", "24 cm", "28 cm", "40 x 40 cm", "1,5 L"],
    "garden": ["", "20 m", "25 m"],
    "fashion": [""],
    "food": ["250 g", "500 g", "1 kg", "100 g"],
}
VAT_OF = {"home": 20.0, "garden": 20.0, "fashion": 20.0, "food": 5.5}
UNIT_OF = {"home": "U", "garden": "U", "fashion": "U", "food": "U"}
BRANDS = [
    "Cuivres de Normandie",
    "Atelier Lumière",
    "Jardins d'Antan",
    "Maison Colbert",
    "Terre & Sel",
    "Les Tisserands",
    "Outils Dupré",
    "Brûlerie Saint-Roch",
    "Rucher des Alpilles",
    "Maille Française",
]
SUPPLIERS = [
    ("FOU-001", "Distrimaison SAS", "Lyon", "69003"),
    ("FOU-002", "Agri Jardin Sud", "Avignon", "84000"),
    ("FOU-003", "Textiles du Nord", "Roubaix", "59100"),
    ("FOU-004", "Saveurs de France", "Rungis", "94150"),
    ("FOU-005", "Import Déco Atlantique", "Nantes", "44000"),
]
SUPPLIER_OF = {"home": [0, 4], "garden": [1], "fashion": [2], "food": [3]}
COLOURS = ["NOIR", "BLANC", "BLEU", "ROUGE", "VERT", "GRIS"]
COLOUR_RGB = {
    "NOIR": (30, 30, 30),
    "BLANC": (235, 235, 230),
    "BLEU": (40, 80, 170),
    "ROUGE": (180, 40, 40),
    "VERT": (50, 130, 70),
    "GRIS": (130, 130, 130),
}
FASHION_SIZES = ["S", "M", "L", "XL"]
FIRST = [
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Louise",
    "Jules",
    "Hugo",
    "Lucas",
    "Théo",
    "Arthur",
    "Inès",
    "Zoé",
    "Gabriel",
    "Raphaël",
    "Émilie",
    "Françoise",
    "Hélène",
    "Jérôme",
    "Stéphane",
    "Noël",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
]
CITIES = [
    ("75011", "Paris"),
    ("69002", "Lyon"),
    ("13001", "Marseille"),
    ("31000", "Toulouse"),
    ("33000", "Bordeaux"),
    ("44000", "Nantes"),
    ("67000", "Strasbourg"),
    ("59000", "Lille"),
    ("35000", "Rennes"),
    ("06000", "Nice"),
]
STREETS = [
    "rue de la République",
    "avenue Jean Jaurès",
    "boulevard Victor Hugo",
    "place de l'Église",
    "rue des Lilas",
    "chemin des Vignes",
    "allée des Tilleuls",
    "rue Pasteur",
]


def _family_frame() -> pd.DataFrame:
    ids = {code: i + 1 for i, (code, *_rest) in enumerate(FAMILIES)}
    return pd.DataFrame(
        {
            "id": [ids[c] for c, *_ in FAMILIES],
            "code": [c for c, *_ in FAMILIES],
            "name": [n for _, n, *_ in FAMILIES],
            "parent_id": [ids[p] if p else None for _, _, p, _ in FAMILIES],
            "position": range(len(FAMILIES)),
        }
    ).astype({"parent_id": "Int64"})


def _pick(rng: np.random.Generator, options, n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def generate(articles: int = 1000, seed: int = 42, customers: int | None = None) -> dict[str, pd.DataFrame]:
    """All demo tables as DataFrames (ids included), deterministic for a (size, seed)."""
    rng = np.random.default_rng(seed)
    n = articles
    fam = _family_frame()
    fam_ids = dict(zip(fam.code, fam.id))
    leaf_idx = rng.integers(0, len(LEAVES), n)
    leaf = np.asarray([f[0] for f in LEAVES], dtype=object)[leaf_idx]
    kind = np.asarray([f[3] for f in LEAVES], dtype=object)[leaf_idx]
    ids = np.arange(1, n + 1)
    refs = np.char.add("ART-", np.char.zfill(ids.astype(str), 6)).astype(object)

    names = np.empty(n, dtype=object)
    supplier_idx = np.empty(n, dtype=np.int64)
    for k in NOUNS:  # vectorised per kind of article (four kinds), never per row
        m = kind == k
        cnt = int(m.sum())
        size = _pick(rng, SIZES_OF[k], cnt)
        base = _pick(rng, NOUNS[k], cnt) + " " + _pick(rng, QUALIFIERS[k], cnt)
        names[m] = np.where(size == "", base, base + " " + size)
        supplier_idx[m] = _pick(rng, SUPPLIER_OF[k], cnt).astype(np.int64)
    vat = np.vectorize(VAT_OF.get, otypes=[float])(kind)
    price = np.round(rng.gamma(2.0, 12.0, n) + 2.5, 2)
    purchase = np.round(price * rng.uniform(0.4, 0.65, n), 2)
    brand_id = rng.integers(1, len(BRANDS) + 1, n)
    web = rng.random(n) < 0.9
    short = "<p>" + names + " de qualité, sélectionné par nos équipes.</p>"
    long = (
        "<p><strong>" + names + "</strong> : un incontournable du rayon.</p>"
        "<ul><li>Garantie 2 ans</li><li>Expédié sous 48 h</li></ul>"
    )
    # A few descriptions typed with hazards the shop must never receive as such.
    long[::97] = long[::97] + '<script>alert("x")</script><img src="x.png" onerror="alert(1)">'
    weights = np.round(rng.uniform(0.05, 4.0, n), 3)
    ean = _ean13("3760", ids)

    article = pd.DataFrame(
        {
            "id": ids,
            "reference": refs,
            "name": names,
            "short_description": short,
            "long_description": long,
            "family_id": pd.Series(leaf).map(fam_ids).to_numpy(),
            "brand_id": brand_id,
            "supplier_id": supplier_idx + 1,
            "supplier_reference": np.char.add("SR-", np.char.zfill(((ids * 7919) % 1_000_000).astype(str), 6)),
            "sales_unit": np.vectorize(UNIT_OF.get, otypes=[object])(kind),
            "weight_kg": weights,
            "vat_rate": vat,
            "price_excl_vat": price,
            "purchase_price": purchase,
            "ean": ean,
            "web": web,
            "min_stock": rng.integers(0, 6, n),
            "reorder_qty": rng.integers(6, 25, n),
        }
    )

    # Variants: fashion articles come in sizes x 1-3 colours.
    fashion = np.flatnonzero(kind == "fashion")
    ncol = rng.integers(1, 4, len(fashion))
    art_rep = np.repeat(fashion, ncol * len(FASHION_SIZES))
    colour_pick = (
        np.concatenate([rng.choice(len(COLOURS), c, replace=False) for c in ncol])
        if len(fashion)
        else np.array([], int)
    )
    colours = np.repeat(np.asarray(COLOURS, dtype=object)[colour_pick], len(FASHION_SIZES))
    sizes = np.tile(np.asarray(FASHION_SIZES, dtype=object), int(ncol.sum()))
    vref = refs[art_rep] + "-" + sizes + "-" + colours
    nv = len(vref)
    variant = pd.DataFrame(
        {
            "id": np.arange(1, nv + 1),
            "article_id": ids[art_rep],
            "reference": vref,
            "ean": _ean13("3770", np.arange(1, nv + 1)),
            "size": sizes,
            "colour": colours,
            "price_impact": np.where(sizes == "XL", 2.0, 0.0),
            "weight_impact": 0.0,
            "position": np.tile(np.arange(len(FASHION_SIZES)), int(ncol.sum())),
        }
    )

    # Stock: a warehouse (web) and a store (not web), per article without variants and per variant.
    plain = np.setdiff1d(ids - 1, fashion)
    rows_art = ids[plain]
    s_art = np.concatenate([rows_art, variant.article_id.to_numpy()])
    s_var = np.concatenate([np.full(len(rows_art), -1), variant.id.to_numpy()])
    stock_frames = []
    for loc in ("ENT", "MAG1"):
        qty = rng.integers(0, 40, len(s_art))
        stock_frames.append(
            pd.DataFrame(
                {
                    "location_code": loc,
                    "article_id": s_art,
                    "variant_id": pd.array(np.where(s_var < 0, None, s_var), dtype="Int64"),
                    "quantity": qty,
                    "reserved": np.minimum(qty, rng.integers(0, 3, len(s_art))),
                }
            )
        )
    stock = pd.concat(stock_frames, ignore_index=True)

    nc = customers if customers is not None else max(50, n // 10)
    cids = np.arange(1, nc + 1)
    first = _pick(rng, FIRST, nc)
    last = _pick(rng, LAST, nc)
    email = [f"{_ascii(f).lower()}.{_ascii(last_).lower()}.{i}@exemple.fr" for f, last_, i in zip(first, last, cids)]
    customer = pd.DataFrame(
        {
            "id": cids,
            "code": np.char.add("CLI-", np.char.zfill(cids.astype(str), 6)).astype(object),
            "email": email,
            "first_name": first,
            "last_name": last,
            "company": np.where(rng.random(nc) < 0.15, "SARL " + last, None),
            "phone": ["0" + str(rng.integers(1, 8)) + f"{(i * 7654321) % 100000000:08d}" for i in cids],
            "customer_family": np.where(rng.random(nc) < 0.15, "PRO", "PART"),
            "price_list": np.where(rng.random(nc) < 0.15, "REV", "PUBLIC"),
            "vat_territory": _pick(rng, ["FR"] * 18 + ["EU", "EXPORT"], nc),
        }
    )
    city = rng.integers(0, len(CITIES), nc)
    addr = pd.DataFrame(
        {
            "customer_id": cids,
            "name": first + " " + last,
            "line1": (rng.integers(1, 120, nc).astype(str).astype(object) + " " + _pick(rng, STREETS, nc)),
            "postcode": [CITIES[c][0] for c in city],
            "city": [CITIES[c][1] for c in city],
            "country": "FR",
        }
    )
    address = pd.concat([addr.assign(kind="billing"), addr.assign(kind="delivery")], ignore_index=True)

    promo_art = ids[rng.random(n) < 0.05]
    promotion = pd.DataFrame(
        {
            "article_id": promo_art,
            "discount_pct": rng.choice([10.0, 15.0, 20.0, 30.0], len(promo_art)),
            "starts_on": "2026-11-01",
            "ends_on": "2026-12-31",
        }
    )
    pro = ids[rng.random(n) < 0.3]
    price_list_item = pd.DataFrame(
        {"price_list": "REV", "article_id": pro, "price_excl_vat": np.round(price[pro - 1] * 0.8, 2), "min_qty": 1}
    )
    return {
        "family": fam,
        "article": article,
        "variant": variant,
        "stock": stock,
        "customer": customer,
        "address": address,
        "promotion": promotion,
        "price_list_item": price_list_item,
    }


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _ean13(prefix: str, numbers: np.ndarray) -> np.ndarray:
    """Valid EAN-13 codes: a 4-digit prefix, 8 digits of the number, the check digit (vectorised)."""
    body = int(prefix) * 10**8 + numbers.astype(np.int64)
    digits = (body[:, None] // 10 ** np.arange(11, -1, -1)) % 10
    weights = np.where(np.arange(12) % 2, 3, 1)
    check = (10 - (digits * weights).sum(axis=1) % 10) % 10
    return (body * 10 + check).astype(str).astype(object)


def photo(reference: str, colour: tuple[int, int, int], size=(480, 360), *, seed: int = 0) -> bytes:
    """A small product photo: a coloured object on a light backdrop, its reference written on it."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (245, 243, 238))
    d = ImageDraw.Draw(img)
    w, h = size
    r = np.random.default_rng(seed)
    x0, y0 = int(w * r.uniform(0.15, 0.3)), int(h * r.uniform(0.15, 0.3))
    d.rounded_rectangle([x0, y0, w - x0, h - y0], radius=24, fill=colour, outline=(60, 60, 60), width=3)
    d.ellipse([w // 2 - 30, h // 2 - 30, w // 2 + 30, h // 2 + 30], fill=(250, 250, 250))
    d.text((12, h - 24), reference, fill=(20, 20, 20))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def seed_database(
    conn: psycopg.Connection, *, articles: int = 1000, seed: int = 42, photos: bool = True, customers: int | None = None
) -> dict[str, int]:
    """Create the schemas and load a demo back office (replacing any earlier demo data)."""
    apply_sql(conn)
    data = generate(articles, seed, customers)
    conn.execute(
        "TRUNCATE erp.image, erp.stock, erp.promotion, erp.price_list_item, erp.variant, erp.article, "
        "erp.address, erp.customer, erp.family, erp.brand, erp.supplier, erp.location, erp.price_list, "
        "erp.customer_family RESTART IDENTITY CASCADE"
    )
    conn.execute(
        "INSERT INTO erp.location VALUES ('ENT', 'Entrepôt de Lyon', 'warehouse', true), "
        "('MAG1', 'Magasin de Villeurbanne', 'store', false)"
    )
    conn.execute("INSERT INTO erp.customer_family VALUES ('PART', 'Particuliers'), ('PRO', 'Professionnels')")
    conn.execute("INSERT INTO erp.price_list VALUES ('PUBLIC', 'Tarif public', 0), ('REV', 'Tarif revendeurs', 20)")
    copy_in(
        conn,
        "erp.brand",
        pd.DataFrame(
            {
                "id": range(1, len(BRANDS) + 1),
                "code": [f"MAR-{i:03d}" for i in range(1, len(BRANDS) + 1)],
                "name": BRANDS,
            }
        ),
    )
    copy_in(
        conn,
        "erp.supplier",
        pd.DataFrame(
            {
                "id": range(1, len(SUPPLIERS) + 1),
                "code": [s[0] for s in SUPPLIERS],
                "name": [s[1] for s in SUPPLIERS],
                "city": [s[2] for s in SUPPLIERS],
                "postcode": [s[3] for s in SUPPLIERS],
                "email": [f"commandes@{s[0].lower()}.fr" for s in SUPPLIERS],
            }
        ),
    )
    for table in ("family", "article", "variant", "stock", "customer", "address", "promotion", "price_list_item"):
        copy_in(conn, f"erp.{table}", data[table])
    counts = {t: len(df) for t, df in data.items()}
    if photos:
        counts["image"] = _load_photos(conn, data)
    for table in ("family", "brand", "supplier", "article", "variant", "customer", "address", "image", "promotion"):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('erp.{table}', 'id'), "
            f"greatest((SELECT max(id) FROM erp.{table}), 1))"
        )
    conn.commit()
    return counts


def _load_photos(conn: psycopg.Connection, data: dict[str, pd.DataFrame]) -> int:
    art = data["article"]
    colour_of = dict(zip(data["variant"].article_id, data["variant"].colour))
    rows = []
    palette = list(COLOUR_RGB.values())
    for aid, ref in zip(art.id.to_numpy(), art.reference.to_numpy()):
        rgb = COLOUR_RGB.get(colour_of.get(aid), palette[aid % len(palette)])
        rows.append((int(aid), 1, f"{ref}.jpg", photo(ref, rgb, seed=int(aid))))
        if aid % 5 == 0:  # a second view for some articles
            rows.append(
                (int(aid), 2, f"{ref}-2.jpg", photo(ref + " (2)", palette[(aid + 1) % len(palette)], seed=int(aid) + 1))
            )
    with conn.cursor() as cur:
        with cur.copy("COPY erp.image (article_id, position, filename, content) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


#: What the retailer sets up for the shop's orders (the demo's ``inbound`` settings, docs/configuration.md):
#: the back-office article of gift cards and the walk-in customer of orders without a customer.
GIFT_CARD_ARTICLE = "CARTE-CADEAU"
WALK_IN_CUSTOMER = "COMPTOIR"
DEMO_INBOUND = {"gift_card_article": GIFT_CARD_ARTICLE, "walk_in_customer": WALK_IN_CUSTOMER}


def seed_inbound_setup(conn: psycopg.Connection) -> dict[str, str]:
    """The gift-card article (no VAT, off the web) and the walk-in customer the demo's ``inbound``
    settings name (:data:`DEMO_INBOUND`); again: nothing changes."""
    conn.execute(
        "INSERT INTO erp.article (reference, name, vat_rate, price_excl_vat, web) "
        "SELECT %s, 'Carte cadeau', 0, 0, false WHERE NOT EXISTS (SELECT 1 FROM erp.article WHERE reference = %s)",
        (GIFT_CARD_ARTICLE, GIFT_CARD_ARTICLE),
    )
    conn.execute(
        "INSERT INTO erp.customer (code, last_name, web) SELECT %s, 'Client comptoir', false "
        "WHERE NOT EXISTS (SELECT 1 FROM erp.customer WHERE code = %s)",
        (WALK_IN_CUSTOMER, WALK_IN_CUSTOMER),
    )
    conn.commit()
    return DEMO_INBOUND


#: What the demo's changes append to (or take off) one article's name.
NEW_MODEL = " (nouveau modèle)"


def apply_demo_changes(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The edits `make demo` (and the end-to-end test) make between two syncs:
    3 articles changed, 1 created, 1 taken off the web."""
    changed = [
        r[0]
        for r in conn.execute(
            "SELECT reference FROM erp.article a WHERE web AND price_excl_vat > 0 "
            "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) ORDER BY id LIMIT 3"
        )
    ]
    conn.execute("UPDATE erp.article SET price_excl_vat = price_excl_vat + 1 WHERE reference = %s", (changed[0],))
    # A second call (the demo's new-only run) takes the suffix off again: still a change, and the
    # name never reads "(nouveau modèle) (nouveau modèle)".
    conn.execute(
        "UPDATE erp.article SET name = CASE WHEN name LIKE %s THEN left(name, -length(%s)) ELSE name || %s END "
        "WHERE reference = %s",
        (f"%{NEW_MODEL}", NEW_MODEL, NEW_MODEL, changed[1]),
    )
    conn.execute(
        "UPDATE erp.article SET long_description = '<p>Nouvelle description.</p>' WHERE reference = %s", (changed[2],)
    )
    removed = conn.execute(
        "SELECT reference FROM erp.article a WHERE web AND price_excl_vat > 0 AND reference <> ALL(%s) "
        "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) ORDER BY id DESC LIMIT 1",
        (changed,),
    ).fetchone()[0]
    conn.execute("UPDATE erp.article SET web = false WHERE reference = %s", (removed,))
    new_ref = conn.execute(
        "INSERT INTO erp.article (reference, name, short_description, long_description, family_id, brand_id, "
        "supplier_id, vat_rate, price_excl_vat, purchase_price, web, weight_kg) "
        "SELECT 'ART-NEW-' || (count(*) + 1), 'Cocotte en fonte émaillée 24 cm', '<p>Mijotez.</p>', "
        "'<p>Fonte émaillée, <em>tous feux</em>.</p>', (SELECT id FROM erp.family WHERE code = 'MAI-CUI-CAS'), "
        "1, 1, 20.0, 89.90, 41.00, true, 4.2 FROM erp.article WHERE reference LIKE 'ART-NEW-%%' "
        "RETURNING reference"
    ).fetchone()[0]
    conn.commit()
    return {"changed": changed, "created": [new_ref], "removed": [removed]}


def seed_parcels(conn: psycopg.Connection, *, when: datetime | None = None) -> dict[str, str]:
    """Two web orders shipped in parcels, as the back office records them (`make demo` shows them
    in the order_status flow's files):

    - ``WEB-PARCELS-1``: 2 + 1 articles, shipped in two parcels (delivery notes ``BL-PARCELS-1A``,
      then ``BL-PARCELS-1B``, each with its carrier and tracking number): partly shipped, then shipped;
    - ``WEB-PARCELS-2``: 1 + 1 articles, the first shipped (``BL-PARCELS-2A``), the second
      cancelled (no longer made): partly shipped, then the remainder cancelled.

    Both for the first web customer with an e-mail, from plain web articles in stock. Returns
    ``{order number: shop order id}``. *when*: the last parcel's time (default: now).
    """
    now = when or datetime.now(UTC)
    customer = conn.execute(
        "SELECT id FROM erp.customer WHERE web AND email IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()[0]
    articles = conn.execute(
        "SELECT a.id, a.name, a.price_excl_vat, a.vat_rate FROM erp.article a WHERE a.web AND a.price_excl_vat > 0 "
        "AND NOT EXISTS (SELECT 1 FROM erp.variant v WHERE v.article_id = a.id) ORDER BY a.id LIMIT 2"
    ).fetchall()
    plans = {
        # order: (shop order id, [(article, quantity)], [(note, hours before now, carrier, tracking, {line: qty})],
        #         {line: cancelled quantity})
        "WEB-PARCELS-1": (
            "DEMO-9001",
            [(articles[0], 2), (articles[1], 1)],
            [
                ("BL-PARCELS-1A", 26, "Colissimo", "6A12345678901", {1: 1, 2: 1}),
                ("BL-PARCELS-1B", 2, "Chronopost", "XY123456789FR", {1: 1}),
            ],
            {},
        ),
        "WEB-PARCELS-2": (
            "DEMO-9002",
            [(articles[0], 1), (articles[1], 1)],
            [("BL-PARCELS-2A", 5, "Colissimo", "6A98765432109", {1: 1})],
            {2: 1},
        ),
    }
    out = {}
    for number, (shop_id, lines, notes, cancelled) in plans.items():
        order_id = conn.execute(
            "INSERT INTO erp.sales_order (number, origin, shop_order_id, customer_id, order_date, status) "
            "VALUES (%s, 'web', %s, %s, %s, 'confirmed') RETURNING id",
            (number, shop_id, customer, now - timedelta(days=2)),
        ).fetchone()[0]
        for i, ((article_id, name, price, vat), qty) in enumerate(lines, 1):
            conn.execute(
                "INSERT INTO erp.sales_order_line (order_id, line_number, article_id, label, quantity, "
                "unit_price_excl_vat, vat_rate) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (order_id, i, article_id, name, qty, price, vat),
            )
        conn.execute("UPDATE erp.sales_order SET status = 'prepared' WHERE id = %s", (order_id,))
        # The history as it happened: confirmed when ordered, prepared an hour later.
        conn.execute(
            "UPDATE erp.order_status_history SET changed_at = %s + CASE status WHEN 'prepared' "
            "THEN interval '1 hour' ELSE interval '0' END WHERE order_id = %s",
            (now - timedelta(days=2), order_id),
        )
        for note, hours, carrier, tracking, shipped in notes:
            note_id = conn.execute(
                "INSERT INTO erp.delivery_note (number, order_id, shipped_at, carrier, tracking_number) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (note, order_id, now - timedelta(hours=hours), carrier, tracking),
            ).fetchone()[0]
            for line, qty in shipped.items():
                conn.execute(
                    "INSERT INTO erp.delivery_note_line (delivery_note_id, order_id, line_number, quantity) "
                    "VALUES (%s, %s, %s, %s)",
                    (note_id, order_id, line, qty),
                )
                conn.execute(
                    "UPDATE erp.sales_order_line SET shipped_qty = shipped_qty + %s "
                    "WHERE order_id = %s AND line_number = %s",
                    (qty, order_id, line),
                )
        for line, qty in cancelled.items():
            conn.execute(
                "INSERT INTO erp.order_line_cancellation (order_id, line_number, quantity, cancelled_at, reason) "
                "VALUES (%s, %s, %s, %s, 'no longer made')",
                (order_id, line, qty, now - timedelta(hours=1)),
            )
        conn.execute("UPDATE erp.sales_order SET status = 'shipped' WHERE id = %s", (order_id,))
        out[number] = shop_id
    conn.commit()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m passerelle_demo", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed", help="create the schemas and load demo data")
    s.add_argument("--dsn", required=True)
    s.add_argument("--articles", type=int, default=1000)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--no-photos", action="store_true")
    c = sub.add_parser("change", help="change 3 articles, add 1, take 1 off the web")
    c.add_argument("--dsn", required=True)
    args = p.parse_args(argv)
    with psycopg.connect(args.dsn) as conn:
        if args.cmd == "seed":
            print(seed_database(conn, articles=args.articles, seed=args.seed, photos=not args.no_photos))
        else:
            print(apply_demo_changes(conn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
