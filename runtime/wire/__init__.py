"""The wire types: IDL types as wire descriptors, Jubatus's datum, method signatures."""
