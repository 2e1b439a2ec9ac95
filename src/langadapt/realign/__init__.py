"""realign"""
