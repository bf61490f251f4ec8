#include <stdexcept>
#include <vector>

// Greatest common divisor of two non-negative integers (Euclid's algorithm).
long long gcd(long long a, long long b) {
    while (b != 0) {
        long long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

template <typename T>
class RingBuffer {
public:
    explicit RingBuffer(std::size_t capacity) : data_(capacity), head_(0), size_(0) {}

    /** Appends a value, overwriting the oldest one when the buffer is full. */
    void push(const T& value) {
        data_[(head_ + size_) % data_.size()] = value;
        if (size_ < data_.size()) {
            ++size_;
        } else {
            head_ = (head_ + 1) % data_.size();
        }
    }

private:
    std::vector<T> data_;
    std::size_t head_;
    std::size_t size_;
};

/* Returns the element at logical position i (0 = oldest). */
template <typename T>
const T& at(const std::vector<T>& v, std::size_t i) {
    if (i >= v.size()) throw std::out_of_range("index out of range");
    return v[i];
}
