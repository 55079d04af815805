-- Initial schema: the SQLite backend's schema (its migrations 0001 and 0002) in PostgreSQL
-- types. Conventions (reasons in the astraea.storage.postgres docstring):
--   * every row belongs to a realm; deleting the realm deletes it through ON DELETE CASCADE,
--     directly or through the device it belongs to;
--   * device data is keyed by (realm, device_id, ...), device_id being the 16-byte binary id,
--     so those tables can be distributed by (realm, device_id);
--   * instants are bigint microseconds since the Unix epoch (UTC), durations bigint seconds;
--   * values are bytea holding the BSON document {"v": value}; an aggregated object is the
--     BSON document of the object itself;
--   * documents (interfaces, triggers, policies, capabilities) are canonical JSON text;
--   * names, paths and other ordered text sort bytewise (COLLATE "C"), as in SQLite, whatever
--     the database's collation.

CREATE TABLE realms (
    name text COLLATE "C" PRIMARY KEY,
    jwt_public_key_pem text NOT NULL,
    replication_class text NOT NULL,
    replication_factor integer,
    datacenter_replication_factors text,  -- JSON object: datacenter -> factor
    device_registration_limit bigint,
    datastream_maximum_storage_retention bigint,
    -- A fresh random value in every transaction that installs or deletes a trigger; readers
    -- compare it for equality only. 0: no trigger was ever installed in the realm.
    triggers_version bigint NOT NULL DEFAULT 0
);

CREATE TABLE interfaces (
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name text COLLATE "C" NOT NULL,
    major integer NOT NULL CHECK (major >= 0),
    minor integer NOT NULL CHECK (minor >= 0),
    collision_key text COLLATE "C" NOT NULL,  -- name lowercased without hyphens
    type text NOT NULL CHECK (type IN ('datastream', 'properties')),
    ownership text NOT NULL CHECK (ownership IN ('device', 'server')),
    aggregation text NOT NULL CHECK (aggregation IN ('individual', 'object')),
    document text NOT NULL,  -- Interface.to_json()
    PRIMARY KEY (realm, name, major)
);

CREATE INDEX interfaces_by_collision_key ON interfaces (realm, collision_key);

CREATE TABLE devices (
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    device_id bytea NOT NULL CHECK (octet_length(device_id) = 16),
    protocol_revision integer NOT NULL DEFAULT 0,
    first_registration bigint,
    credentials_secret_hash text,  -- bcrypt; NULL once the device is unregistered
    credentials_inhibited boolean NOT NULL DEFAULT false,
    first_credentials_request bigint,
    last_credentials_request_ip text,
    cert_serial text,
    cert_aki text,
    last_connection bigint,
    last_disconnection bigint,
    last_seen_ip text,
    connected boolean NOT NULL DEFAULT false,
    pending_empty_cache boolean NOT NULL DEFAULT false,
    total_received_msgs bigint NOT NULL DEFAULT 0,
    total_received_bytes bigint NOT NULL DEFAULT 0,
    capabilities text,  -- JSON object, e.g. {"purge_properties_compression_format": "zlib"}
    PRIMARY KEY (realm, device_id)
);

CREATE INDEX devices_connected ON devices (realm) WHERE connected;

-- A row exists while the device is being deleted (DeviceStatus.deletion_in_progress); the
-- acknowledgements say which components have let go of the device.
CREATE TABLE device_deletions (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    started_at bigint NOT NULL,
    transport_ack boolean NOT NULL DEFAULT false,
    ingest_start_ack boolean NOT NULL DEFAULT false,
    ingest_end_ack boolean NOT NULL DEFAULT false,
    PRIMARY KEY (realm, device_id),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

-- Every interface version a device has declared: its current introspection (with minor) and,
-- once removed from it, its previous interfaces; both carry the exchanged counters of that
-- (name, major).
CREATE TABLE device_interfaces (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    interface_name text COLLATE "C" NOT NULL,
    major integer NOT NULL CHECK (major >= 0),
    minor integer NOT NULL CHECK (minor >= 0),
    in_introspection boolean NOT NULL,
    exchanged_msgs bigint NOT NULL DEFAULT 0,
    exchanged_bytes bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (realm, device_id, interface_name, major),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX device_interfaces_one_introspected_major
    ON device_interfaces (realm, device_id, interface_name) WHERE in_introspection;

CREATE INDEX device_interfaces_introspected_by_interface
    ON device_interfaces (realm, interface_name, major) WHERE in_introspection;

CREATE TABLE device_aliases (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    tag text COLLATE "C" NOT NULL CHECK (tag <> ''),
    alias text COLLATE "C" NOT NULL CHECK (alias <> ''),
    PRIMARY KEY (realm, device_id, tag),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

-- Aliases resolve to devices, so they are unique across the realm.
CREATE UNIQUE INDEX device_aliases_unique_in_realm ON device_aliases (realm, alias);

CREATE TABLE device_attributes (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    key text COLLATE "C" NOT NULL CHECK (key <> ''),
    value text NOT NULL,
    PRIMARY KEY (realm, device_id, key),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

-- A group exists exactly while it has members, so membership is the only group table:
-- removing the last member removes the group. insertion_id orders a group's members and is
-- the paging cursor of the group device list; writers make it grow with every insertion.
CREATE TABLE group_members (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    group_name text COLLATE "C" NOT NULL CHECK (group_name <> ''),
    insertion_id bigint NOT NULL,
    PRIMARY KEY (realm, device_id, group_name),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX group_members_in_insertion_order
    ON group_members (realm, group_name, insertion_id);

CREATE TABLE individual_properties (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    interface_name text COLLATE "C" NOT NULL,
    major integer NOT NULL,
    path text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    reception_timestamp bigint NOT NULL,
    PRIMARY KEY (realm, device_id, interface_name, major, path),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

-- reception_timestamp has microsecond resolution and writers keep it strictly increasing per
-- device, so (value_timestamp, reception_timestamp) orders the samples of a path and is unique.
CREATE TABLE individual_datastreams (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    interface_name text COLLATE "C" NOT NULL,
    major integer NOT NULL,
    path text COLLATE "C" NOT NULL,
    value_timestamp bigint NOT NULL,
    reception_timestamp bigint NOT NULL,
    value bytea NOT NULL,
    expires_at bigint,  -- NULL: kept forever
    PRIMARY KEY (realm, device_id, interface_name, major, path, value_timestamp, reception_timestamp),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE INDEX individual_datastreams_expiring
    ON individual_datastreams (expires_at) WHERE expires_at IS NOT NULL;

-- One table for every object-aggregated interface. value_timestamp is the explicit timestamp
-- when the mappings have one and the reception timestamp otherwise, so reads always use it.
CREATE TABLE object_datastreams (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    interface_name text COLLATE "C" NOT NULL,
    major integer NOT NULL,
    path text COLLATE "C" NOT NULL,
    value_timestamp bigint NOT NULL,
    reception_timestamp bigint NOT NULL,
    value bytea NOT NULL,
    expires_at bigint,
    PRIMARY KEY (realm, device_id, interface_name, major, path, value_timestamp, reception_timestamp),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE INDEX object_datastreams_expiring
    ON object_datastreams (expires_at) WHERE expires_at IS NOT NULL;

-- The paths a device has sent datastream values on (individual or object), so that reading an
-- interface root does not scan the samples. Refreshed by writers; expires with the samples.
CREATE TABLE datastream_paths (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    interface_name text COLLATE "C" NOT NULL,
    major integer NOT NULL,
    path text COLLATE "C" NOT NULL,
    reception_timestamp bigint NOT NULL,
    expires_at bigint,
    PRIMARY KEY (realm, device_id, interface_name, major, path),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE INDEX datastream_paths_expiring
    ON datastream_paths (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE trigger_policies (
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name text COLLATE "C" NOT NULL,
    document text NOT NULL,  -- the policy JSON as rendered by Realm Management
    PRIMARY KEY (realm, name)
);

-- Deleting a policy that triggers still use fails on the foreign key (NO ACTION); deleting the
-- realm does not, because the check runs once the whole cascade has removed the triggers too.
CREATE TABLE triggers (
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    name text COLLATE "C" NOT NULL,
    trigger_id bytea NOT NULL UNIQUE CHECK (octet_length(trigger_id) = 16),  -- parent UUID
    policy text COLLATE "C",  -- NULL: the implicit @default policy
    document text NOT NULL,  -- the trigger JSON as rendered by Realm Management
    PRIMARY KEY (realm, name),
    FOREIGN KEY (realm, policy) REFERENCES trigger_policies (realm, name)
);

CREATE INDEX triggers_by_policy ON triggers (realm, policy) WHERE policy IS NOT NULL;

-- The subjects of each trigger's simple triggers, for finding the triggers an event can match
-- and the triggers that use an interface; the full definition stays in triggers.document,
-- where `position` indexes its simple_triggers list.
CREATE TABLE simple_triggers (
    realm text COLLATE "C" NOT NULL,
    trigger_name text COLLATE "C" NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    simple_trigger_id bytea NOT NULL UNIQUE CHECK (octet_length(simple_trigger_id) = 16),
    kind text NOT NULL CHECK (kind IN ('data_trigger', 'device_trigger')),
    event text NOT NULL,  -- the `on` value
    interface_name text COLLATE "C",  -- NULL: none given; '*': any interface
    interface_major integer,
    device_id bytea CHECK (device_id IS NULL OR octet_length(device_id) = 16),  -- NULL: any
    group_name text COLLATE "C",
    PRIMARY KEY (realm, trigger_name, position),
    FOREIGN KEY (realm, trigger_name) REFERENCES triggers (realm, name) ON DELETE CASCADE
);

CREATE INDEX simple_triggers_by_interface
    ON simple_triggers (realm, interface_name, interface_major) WHERE interface_name IS NOT NULL;

CREATE INDEX simple_triggers_by_device
    ON simple_triggers (realm, device_id) WHERE device_id IS NOT NULL;

CREATE INDEX simple_triggers_by_group
    ON simple_triggers (realm, group_name) WHERE group_name IS NOT NULL;

-- Durable queue of trigger deliveries, one FIFO per (realm, policy). seq comes from an identity
-- sequence, which never goes back nor hands a value out twice (a rolled-back insert leaves a
-- gap), so it orders the queue and identifies a delivery while it is in flight. No foreign key
-- to the device: deletion events are delivered after the device row is gone.
CREATE TABLE trigger_deliveries (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    policy text COLLATE "C" NOT NULL,  -- policy name, '@default' for triggers without one
    device_id bytea NOT NULL CHECK (octet_length(device_id) = 16),
    trigger_id bytea NOT NULL CHECK (octet_length(trigger_id) = 16),
    simple_trigger_id bytea NOT NULL CHECK (octet_length(simple_trigger_id) = 16),
    event_type text NOT NULL,  -- e.g. 'incoming_data_event'
    event bytea NOT NULL,  -- the encoded event
    enqueued_at bigint NOT NULL,  -- milliseconds since the epoch, like every queue time
    expires_at bigint,  -- enqueued_at + the policy's event_ttl; NULL: no TTL
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL
);

CREATE INDEX trigger_deliveries_queue ON trigger_deliveries (realm, policy, seq);

-- Deliveries of one device go out in order: a later one waits while an earlier one is retried.
CREATE INDEX trigger_deliveries_by_device ON trigger_deliveries (realm, device_id, seq);

CREATE INDEX trigger_deliveries_expiring
    ON trigger_deliveries (expires_at) WHERE expires_at IS NOT NULL;
