import CDescentKernels
import Descent

#if canImport(Glibc)
import Glibc
#endif

/// Loads a labelled data set from two IDX (MNIST-format) files, e.g. Fashion-MNIST's
/// "train-images-idx3-ubyte.gz" and "train-labels-idx1-ubyte.gz" (Debian's
/// dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist). Each file may be
/// raw or gzip-compressed; gzip is recognised by its magic bytes, not by the file name.
///
/// Images: type 0x08 (unsigned byte) with at least 2 dimensions (count, then the sample's
/// shape, e.g. 0x00000803: count x rows x columns). Labels: type 0x08 with 1 dimension (count).
/// `*images` receives [*count][*features] row-major floats, each pixel byte divided by 255
/// (so in [0, 1]), and `*labels` *count class indices as stored (0..255). `*features` is
/// the product of the image dimensions after the first (784 for 28 x 28).
///
/// Every header field is validated before data are read: magic bytes, data type, dimension
/// count, every dimension > 0, at most 2^31 elements per file, equal image and label counts,
/// and the exact file length (after decompression): a file cut short and a file with extra
/// bytes are both errors that give the expected and the actual size. A header claiming more
/// data than the file holds never causes an allocation of the claimed size.
///
/// Errors: DESCENT_ERR_INVALID_ARGUMENT (a NULL argument), DESCENT_ERR_NOT_FOUND (a file does
/// not exist; the message names it), DESCENT_ERR_IO (a file cannot be opened or read, or is a
/// directory), DESCENT_ERR_FORMAT (bad contents or corrupt gzip data: the message names the
/// file and the field, e.g. "magic is 0x00000D03: data type 0x0D (32-bit float) is not
/// supported"), DESCENT_ERR_OUT_OF_MEMORY. On error `*images` and `*labels` are set to NULL
/// and `*count` and `*features` to 0 (those that are not NULL), and nothing is allocated.
/// Memory: the caller owns both arrays (allocated by the library, 64-byte aligned) and frees
/// them with `descent_dataset_free`. Threads: safe from any thread.
@c(descent_dataset_load_idx) public func descent_dataset_load_idx(
    _ images_path: UnsafePointer<CChar>?, _ labels_path: UnsafePointer<CChar>?,
    _ images: UnsafeMutablePointer<UnsafeMutablePointer<Float>?>?,
    _ labels: UnsafeMutablePointer<UnsafeMutablePointer<Int32>?>?,
    _ count: UnsafeMutablePointer<Int64>?, _ features: UnsafeMutablePointer<Int64>?
) -> Int32 {
    images?.pointee = nil
    labels?.pointee = nil
    count?.pointee = 0
    features?.pointee = 0
    return guarded("descent_dataset_load_idx") {
        let imagesPath = try string(images_path, "images_path")
        let labelsPath = try string(labels_path, "labels_path")
        let imagesOut = try required(images, "images")
        let labelsOut = try required(labels, "labels")
        let countOut = try required(count, "count")
        let featuresOut = try required(features, "features")
        let data = try Dataset.loadIDXUnmanaged(images: imagesPath, labels: labelsPath)
        imagesOut.pointee = data.images
        labelsOut.pointee = data.labels
        countOut.pointee = Int64(data.count)
        featuresOut.pointee = Int64(data.features)
    }
}

/// Frees the arrays that `descent_dataset_load_idx` returned. Either pointer may be NULL
/// (ignored); do not pass other pointers, and free each array only once.
///
/// Threads: safe from any thread.
@c(descent_dataset_free) public func descent_dataset_free(
    _ images: UnsafeMutablePointer<Float>?, _ labels: UnsafeMutablePointer<Int32>?
) {
    free(images)
    free(labels)
}
