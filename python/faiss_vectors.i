// FAISS's own std::vector wrappers (Float32Vector, UInt8Vector, ...), as
// faiss/python/swigfaiss.swig declares them. This file is only ever
// %import-ed (module="faiss"): no code is generated for these types, a
// std::vector<float>* returned by faiss_bq becomes a faiss.Float32Vector
// proxy through the shared SWIG type table. Never %include it: the last
// module to register a type takes its proxy over (NOTES.md, "Python module").
namespace std {
template <class T>
class vector {
   public:
    vector();
    void push_back(T);
    void clear();
    T* data();
    size_t size();
    T at(size_t n) const;
    T& operator[](size_t n);
    void resize(size_t n);
    void swap(vector<T>& other);
};
} // namespace std

%template(Float32Vector) std::vector<float>;
%template(UInt8Vector) std::vector<uint8_t>;
