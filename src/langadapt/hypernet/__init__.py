"""hypernet"""
