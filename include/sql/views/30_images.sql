-- Photos as Passerelle reads them (the images step: passerelle.operators.images).
-- One row per photo of a web article or of one of its active variants; variant photos carry
-- the variant's reference. "key" is "<reference>:<position>" (the render's slot); position is
-- the back office's own (1 is the cover), the same as in passerelle_src.article's "images"
-- column, so the product files' image URLs and the uploaded renders agree.
--
-- source_hash is SHA-256 hex of the bytes, computed here near the data (equal to
-- passerelle.core.images.source_hash); photos given as a path have none here and are hashed
-- in Python (passerelle.core.images.fingerprint_files). "content" is only read by the render
-- tasks, a few keys at a time.
CREATE OR REPLACE VIEW passerelle_src.image AS
SELECT coalesce(v.reference, a.reference) || ':' || i.position AS key,
       coalesce(v.reference, a.reference) AS reference,
       a.reference AS article_reference,
       i.position,
       CASE WHEN i.content IS NOT NULL THEN encode(sha256(i.content), 'hex') END AS source_hash,
       CASE WHEN i.content IS NULL THEN i.path END AS path,
       i.content,
       i.id AS image_id
FROM erp.image i
JOIN erp.article a ON a.id = i.article_id
LEFT JOIN erp.variant v ON v.id = i.variant_id
WHERE a.web AND (v.id IS NULL OR v.active);
