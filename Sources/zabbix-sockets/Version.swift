/// The release version, the only place it is written: `zabbix-sockets --version` prints it,
/// scripts/package reads it for the Debian package and the tarball, templates/generate.py for the
/// templates' "Template version". Keep the line's form (`let zabbixSocketsVersion = "X.Y.Z"`).
let zabbixSocketsVersion = "2.0.0"
