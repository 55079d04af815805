-- Initial schema. Conventions (reasons in the astraea.storage.sqlite docstring):
--   * every row belongs to a realm; deleting the realm deletes it through ON DELETE CASCADE,
--     directly or through the device it belongs to;
--   * device data is keyed by (realm, device_id, ...), device_id being the 16-byte binary id;
--   * instants are INTEGER microseconds since the Unix epoch (UTC), durations INTEGER seconds;
--   * values are BLOBs holding the BSON document {"v": value}; an aggregated object is the
--     BSON document of the object itself;
--   * documents (interfaces, triggers, policies, capabilities) are canonical JSON text;
--   * booleans are INTEGER 0 or 1.

CREATE TABLE realms (
    name TEXT PRIMARY KEY,
    jwt_public_key_pem TEXT NOT NULL,
    replication_class TEXT NOT NULL,
    replication_factor INTEGER,
    datacenter_replication_factors TEXT,  -- JSON object: datacenter -> factor
    device_registration_limit INTEGER,
    datastream_maximum_storage_retention INTEGER
) STRICT;

CREATE TABLE interfaces (
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    major INTEGER NOT NULL CHECK (major >= 0),
    minor INTEGER NOT NULL CHECK (minor >= 0),
    collision_key TEXT NOT NULL,  -- name lowercased without hyphens
    type TEXT NOT NULL CHECK (type IN ('datastream', 'properties')),
    ownership TEXT NOT NULL CHECK (ownership IN ('device', 'server')),
    aggregation TEXT NOT NULL CHECK (aggregation IN ('individual', 'object')),
    document TEXT NOT NULL,  -- Interface.to_json()
    PRIMARY KEY (realm, name, major)
) STRICT;

CREATE INDEX interfaces_by_collision_key ON interfaces (realm, collision_key);

CREATE TABLE devices (
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    device_id BLOB NOT NULL CHECK (length(device_id) = 16),
    protocol_revision INTEGER NOT NULL DEFAULT 0,
    first_registration INTEGER,
    credentials_secret_hash TEXT,  -- bcrypt; NULL once the device is unregistered
    credentials_inhibited INTEGER NOT NULL DEFAULT 0 CHECK (credentials_inhibited IN (0, 1)),
    first_credentials_request INTEGER,
    last_credentials_request_ip TEXT,
    cert_serial TEXT,
    cert_aki TEXT,
    last_connection INTEGER,
    last_disconnection INTEGER,
    last_seen_ip TEXT,
    connected INTEGER NOT NULL DEFAULT 0 CHECK (connected IN (0, 1)),
    pending_empty_cache INTEGER NOT NULL DEFAULT 0 CHECK (pending_empty_cache IN (0, 1)),
    total_received_msgs INTEGER NOT NULL DEFAULT 0,
    total_received_bytes INTEGER NOT NULL DEFAULT 0,
    capabilities TEXT,  -- JSON object, e.g. {"purge_properties_compression_format": "zlib"}
    PRIMARY KEY (realm, device_id)
) STRICT;

CREATE INDEX devices_connected ON devices (realm) WHERE connected = 1;

-- A row exists while the device is being deleted (DeviceStatus.deletion_in_progress); the
-- acknowledgements say which components have let go of the device.
CREATE TABLE device_deletions (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    started_at INTEGER NOT NULL,
    transport_ack INTEGER NOT NULL DEFAULT 0 CHECK (transport_ack IN (0, 1)),
    ingest_start_ack INTEGER NOT NULL DEFAULT 0 CHECK (ingest_start_ack IN (0, 1)),
    ingest_end_ack INTEGER NOT NULL DEFAULT 0 CHECK (ingest_end_ack IN (0, 1)),
    PRIMARY KEY (realm, device_id),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

-- Every interface version a device has declared: its current introspection (with minor) and,
-- once removed from it, its previous interfaces; both carry the exchanged counters of that
-- (name, major).
CREATE TABLE device_interfaces (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    interface_name TEXT NOT NULL,
    major INTEGER NOT NULL CHECK (major >= 0),
    minor INTEGER NOT NULL CHECK (minor >= 0),
    in_introspection INTEGER NOT NULL CHECK (in_introspection IN (0, 1)),
    exchanged_msgs INTEGER NOT NULL DEFAULT 0,
    exchanged_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (realm, device_id, interface_name, major),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

CREATE UNIQUE INDEX device_interfaces_one_introspected_major
    ON device_interfaces (realm, device_id, interface_name) WHERE in_introspection = 1;

CREATE INDEX device_interfaces_introspected_by_interface
    ON device_interfaces (realm, interface_name, major) WHERE in_introspection = 1;

CREATE TABLE device_aliases (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    tag TEXT NOT NULL CHECK (tag <> ''),
    alias TEXT NOT NULL CHECK (alias <> ''),
    PRIMARY KEY (realm, device_id, tag),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

-- Aliases resolve to devices, so they are unique across the realm.
CREATE UNIQUE INDEX device_aliases_unique_in_realm ON device_aliases (realm, alias);

CREATE TABLE device_attributes (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    key TEXT NOT NULL CHECK (key <> ''),
    value TEXT NOT NULL,
    PRIMARY KEY (realm, device_id, key),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

-- A group exists exactly while it has members, so membership is the only group table:
-- removing the last member removes the group. insertion_id orders a group's members and is
-- the paging cursor of the group device list; writers make it grow with every insertion.
CREATE TABLE group_members (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    group_name TEXT NOT NULL CHECK (group_name <> ''),
    insertion_id INTEGER NOT NULL,
    PRIMARY KEY (realm, device_id, group_name),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT;

CREATE UNIQUE INDEX group_members_in_insertion_order
    ON group_members (realm, group_name, insertion_id);

CREATE TABLE individual_properties (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    interface_name TEXT NOT NULL,
    major INTEGER NOT NULL,
    path TEXT NOT NULL,
    value BLOB NOT NULL,
    reception_timestamp INTEGER NOT NULL,
    PRIMARY KEY (realm, device_id, interface_name, major, path),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- reception_timestamp has microsecond resolution and writers keep it strictly increasing per
-- device, so (value_timestamp, reception_timestamp) orders the samples of a path and is unique.
CREATE TABLE individual_datastreams (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    interface_name TEXT NOT NULL,
    major INTEGER NOT NULL,
    path TEXT NOT NULL,
    value_timestamp INTEGER NOT NULL,
    reception_timestamp INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER,  -- NULL: kept forever
    PRIMARY KEY (realm, device_id, interface_name, major, path, value_timestamp, reception_timestamp),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX individual_datastreams_expiring
    ON individual_datastreams (expires_at) WHERE expires_at IS NOT NULL;

-- One table for every object-aggregated interface. value_timestamp is the explicit timestamp
-- when the mappings have one and the reception timestamp otherwise, so reads always use it.
CREATE TABLE object_datastreams (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    interface_name TEXT NOT NULL,
    major INTEGER NOT NULL,
    path TEXT NOT NULL,
    value_timestamp INTEGER NOT NULL,
    reception_timestamp INTEGER NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (realm, device_id, interface_name, major, path, value_timestamp, reception_timestamp),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX object_datastreams_expiring
    ON object_datastreams (expires_at) WHERE expires_at IS NOT NULL;

-- The paths a device has sent datastream values on (individual or object), so that reading an
-- interface root does not scan the samples. Refreshed by writers; expires with the samples.
CREATE TABLE datastream_paths (
    realm TEXT NOT NULL,
    device_id BLOB NOT NULL,
    interface_name TEXT NOT NULL,
    major INTEGER NOT NULL,
    path TEXT NOT NULL,
    reception_timestamp INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (realm, device_id, interface_name, major, path),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE INDEX datastream_paths_expiring
    ON datastream_paths (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE trigger_policies (
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    document TEXT NOT NULL,  -- the policy JSON as rendered by Realm Management
    PRIMARY KEY (realm, name)
) STRICT;

-- Deleting a policy that triggers still use fails on the foreign key; deleting the realm does
-- not, because the check runs when the whole cascading statement has finished.
CREATE TABLE triggers (
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    trigger_id BLOB NOT NULL UNIQUE CHECK (length(trigger_id) = 16),  -- parent trigger UUID
    policy TEXT,  -- NULL: the implicit @default policy
    document TEXT NOT NULL,  -- the trigger JSON as rendered by Realm Management
    PRIMARY KEY (realm, name),
    FOREIGN KEY (realm, policy) REFERENCES trigger_policies (realm, name)
) STRICT;

CREATE INDEX triggers_by_policy ON triggers (realm, policy) WHERE policy IS NOT NULL;

-- The subjects of each trigger's simple triggers, for finding the triggers an event can match
-- and the triggers that use an interface; the full definition stays in triggers.document,
-- where `position` indexes its simple_triggers list.
CREATE TABLE simple_triggers (
    realm TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position >= 0),
    simple_trigger_id BLOB NOT NULL UNIQUE CHECK (length(simple_trigger_id) = 16),
    kind TEXT NOT NULL CHECK (kind IN ('data_trigger', 'device_trigger')),
    event TEXT NOT NULL,  -- the `on` value
    interface_name TEXT,  -- NULL: none given; '*': any interface
    interface_major INTEGER,
    device_id BLOB CHECK (device_id IS NULL OR length(device_id) = 16),  -- NULL: any device
    group_name TEXT,
    PRIMARY KEY (realm, trigger_name, position),
    FOREIGN KEY (realm, trigger_name) REFERENCES triggers (realm, name) ON DELETE CASCADE
) STRICT;

CREATE INDEX simple_triggers_by_interface
    ON simple_triggers (realm, interface_name, interface_major) WHERE interface_name IS NOT NULL;

CREATE INDEX simple_triggers_by_device
    ON simple_triggers (realm, device_id) WHERE device_id IS NOT NULL;

CREATE INDEX simple_triggers_by_group
    ON simple_triggers (realm, group_name) WHERE group_name IS NOT NULL;

-- Durable queue of trigger deliveries, one FIFO per (realm, policy). seq is never reused, so
-- it orders the queue and identifies a delivery while it is in flight. No foreign key to the
-- device: deletion events are delivered after the device row is gone.
CREATE TABLE trigger_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    realm TEXT NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    policy TEXT NOT NULL,  -- policy name, '@default' for triggers without one
    device_id BLOB NOT NULL CHECK (length(device_id) = 16),
    trigger_id BLOB NOT NULL CHECK (length(trigger_id) = 16),
    simple_trigger_id BLOB NOT NULL CHECK (length(simple_trigger_id) = 16),
    event_type TEXT NOT NULL,  -- e.g. 'incoming_data_event'
    event BLOB NOT NULL,  -- the encoded event
    enqueued_at INTEGER NOT NULL,
    expires_at INTEGER,  -- enqueued_at + the policy's event_ttl; NULL: no TTL
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
) STRICT;

CREATE INDEX trigger_deliveries_queue ON trigger_deliveries (realm, policy, seq);

-- Deliveries of one device go out in order: a later one waits while an earlier one is retried.
CREATE INDEX trigger_deliveries_by_device ON trigger_deliveries (realm, device_id, seq);

CREATE INDEX trigger_deliveries_expiring
    ON trigger_deliveries (expires_at) WHERE expires_at IS NOT NULL;
