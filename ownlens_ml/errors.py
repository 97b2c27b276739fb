"""One error base class and one subclass per condition the user can fix."""


class OwnLensError(Exception):
    """Base class: a problem the user can act on; the CLI prints it as one line."""


class ConfigError(OwnLensError):
    """A setting is missing or malformed."""


class DatabaseUnavailableError(OwnLensError):
    """The configured database cannot be reached."""


class RedisUnavailableError(OwnLensError):
    """The configured Redis cannot be reached."""


class MissingTableError(OwnLensError):
    """A table the step needs does not exist or is empty."""


class ValidationError(OwnLensError):
    """Input rows or arguments failed validation."""


class EmptyWindowError(OwnLensError):
    """A time window selects no data."""


class UnknownFeatureServiceError(OwnLensError):
    """A feature service name is not registered."""


class UnknownModelError(OwnLensError):
    """A model name is not declared."""


class DataQualityError(OwnLensError):
    """Snapshot tables failed their data quality checks."""


class RegistryError(OwnLensError):
    """A model registry operation cannot be carried out (bad alias, run state, artifact)."""


class UnknownModelVersionError(RegistryError):
    """A model name, version number or alias is not in the registry."""


class ArtifactIntegrityError(RegistryError):
    """A stored model artifact does not match its recorded SHA-256 checksum."""


class UntrustedArtifactError(RegistryError):
    """A model artifact names a type outside the registry's allowlist."""


class ModelValidationError(OwnLensError):
    """A trained model failed a check that runs before registration (named in the message)."""


class StateFolderError(OwnLensError):
    """The state folder (OWNLENS_HOME) cannot be created or written."""


class FeatureStoreStateError(OwnLensError):
    """The Feast registry or online store is missing, empty, or bound to another state folder."""


class DamagedStateError(OwnLensError):
    """A state file or registry cannot be read (garbage, truncated, another table's); the message
    names it and how to rebuild it."""


class NotMaterializedError(OwnLensError):
    """The online store holds no values for the entities asked for."""


class SpecError(OwnLensError):
    """A model spec is malformed (named with the field at fault when it is defined)."""


class NoTruthError(OwnLensError):
    """The data has no generator truth (it was imported), so no oracle can score it."""


class TooFewLabelsError(OwnLensError):
    """The rows to fit or score on do not hold the labels a metric needs (e.g. one class only)."""


class NoReferenceProfileError(OwnLensError):
    """A model version has no reference profile to monitor against, and none can be rebuilt."""


class LabelsNotMaturedError(OwnLensError):
    """The outcomes of the predictions asked about are not known yet (their label window is open)."""


class ConcurrentJobError(OwnLensError):
    """Another run of the same job holds its lock on this database or state folder."""
