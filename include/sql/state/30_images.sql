-- What renders the shop holds: one row per photo slot (reference, position) last uploaded.
-- source_hash is the hash of the source those renders were made from; settings the
-- fingerprint of the rendering settings (passerelle.core.images.ImageSettings.fingerprint):
-- a row made with other settings is rendered again. path and stat_signature let
-- fingerprint_files skip re-reading unchanged file sources; names are the files on the server
-- (deleted when the photo leaves the back office).
CREATE TABLE IF NOT EXISTS passerelle.image_snapshot (
    reference       text NOT NULL,
    position        integer NOT NULL,
    key             text NOT NULL,
    source_hash     text NOT NULL,
    path            text,
    stat_signature  text,
    names           text[] NOT NULL DEFAULT '{}',
    settings        text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reference, position)
);
