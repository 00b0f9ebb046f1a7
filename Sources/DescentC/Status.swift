import Descent

/// Status codes. Every function that can fail returns one of these as an `int32_t`; 0 is
/// success. On failure, `descent_last_error()` says which function, which argument and what
/// is wrong. New codes may be added at the end; treat unknown non-zero codes as errors.
@c public enum descent_status: Int32 {
    /// Success.
    case DESCENT_OK = 0
    /// An argument is NULL, out of range, malformed, non-finite or of the wrong size.
    case DESCENT_ERR_INVALID_ARGUMENT = 1
    /// A name (optimizer, hyperparameter, file, directory) does not exist.
    case DESCENT_ERR_NOT_FOUND = 2
    /// NaN or Inf in data that must be finite (gradients, inputs).
    case DESCENT_ERR_NUMERIC = 3
    /// Tensor count or lengths differ from those the optimizer state was created for.
    case DESCENT_ERR_SHAPE = 4
    /// Reading or writing a file failed.
    case DESCENT_ERR_IO = 5
    /// A file's contents are not in the expected format.
    case DESCENT_ERR_FORMAT = 6
    /// A plugin could not be loaded, collides with a loaded name, or its optimizer failed.
    case DESCENT_ERR_PLUGIN = 7
    /// Memory could not be allocated.
    case DESCENT_ERR_OUT_OF_MEMORY = 8
    /// The caller's buffer is too small; the needed size was written to `*needed`.
    case DESCENT_ERR_BUFFER_TOO_SMALL = 9
}
