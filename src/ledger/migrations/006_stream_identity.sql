-- Which stream the ledger's cursor and the signing start belong to: the stream's creation
-- time. A stream deleted and made again starts its sequences over, so a position in the old
-- one means nothing in the new one (and the same event ids could come again).
ALTER TABLE ledger_cursor ADD COLUMN stream_created text;
ALTER TABLE event_signing ADD COLUMN stream_created text;
