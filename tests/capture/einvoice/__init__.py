"""Tests of e-invoice detection, parsing, safe XML and the Factur-X PDF side."""
